# One task runner. `make demo` runs the platform on SQLite; `make test` runs every test.
SHELL := /bin/bash
UV_VERSION := 0.13.8
UV := python3 -m uv
RUN := $(UV) run --frozen

.PHONY: setup browser demo serve test lint bench services

setup:  ## install the locked Python and npm dependencies (uv itself from PyPI if missing)
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen
	npm ci --no-audit --no-fund --loglevel=error

browser:  ## Debian's Chromium and CJK fonts, for the page tests (playwright drives them)
	@command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi "noto.*cjk" || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	     chromium fonts-noto-cjk >/dev/null)

demo: setup  ## the demo county (generated and loaded once) on SQLite (var/kangqiao.db), served
	$(RUN) kangqiao demo --host 127.0.0.1 --port 8000

serve:
	$(RUN) kangqiao serve

services:  ## start PostgreSQL (and Mosquitto) when they are installed but not running
	@bash scripts/services.sh

lint:
	$(RUN) ruff check .
	$(RUN) mypy

test: setup browser services lint  ## lint and types, then the whole suite on SQLite and PostgreSQL
	$(RUN) pytest -n 2

bench: setup services  ## benchmarks; figures go to docs/benchmarks.md
	$(RUN) python bench/ingest.py
	$(RUN) python bench/validation.py
	$(RUN) python bench/search_index.py
