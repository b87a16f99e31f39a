"""Browser assets served by the app itself (county intranets are often offline: no CDN).

Apache ECharts comes from npm (``package.json`` pins it; ``make setup`` runs ``npm ci``) and
is served straight from ``node_modules``, never copied into the repository. The pages' own
script is ``static/charts.js``."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from kangqiao.fhir.outcome import FhirError
from kangqiao.settings import REPO_ROOT

router = APIRouter(prefix="/assets", include_in_schema=False)
ECHARTS_DIR = REPO_ROOT / "node_modules" / "echarts"
STATIC = Path(__file__).resolve().parent / "static"
# The URL carries the version, so browsers may keep the file for a long time.
LONG_CACHE = {"Cache-Control": "public, max-age=31536000, immutable"}


@cache
def echarts_version() -> str:
    try:
        return str(json.loads((ECHARTS_DIR / "package.json").read_text("utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return "missing"


def echarts_url() -> str:
    return f"/assets/echarts-{echarts_version()}.min.js"


@router.get("/echarts-{version}.min.js")
async def echarts(version: str) -> FileResponse:
    path = ECHARTS_DIR / "dist" / "echarts.min.js"
    if version != echarts_version() or not path.is_file():
        raise FhirError.of(404, "not-found", "ECharts is not installed at this version "
                           "(run `make setup`, which runs `npm ci`)")
    return FileResponse(path, media_type="text/javascript", headers=LONG_CACHE)


@router.get("/charts.js")
async def charts_script() -> FileResponse:
    return FileResponse(STATIC / "charts.js", media_type="text/javascript",
                        headers={"Cache-Control": "no-cache"})
