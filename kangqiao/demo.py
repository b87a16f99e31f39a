"""The demo county: generated once (synthetic, deterministic), bulk-loaded into the configured
store, reused on every later start."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kangqiao.fhir.bulk.importer import ImportReport, import_ndjson, ndjson_files
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.demo_accounts import DemoAccount, ensure_demo_accounts
from kangqiao.security.gate import Access
from kangqiao.settings import REPO_ROOT, get_settings

DEMO_DIR = REPO_ROOT / "var" / "demo-county"
LOADER = Access(actor="system/kangqiao-demo", scopes=frozenset({"system/*.cruds"}))


@dataclass
class DemoCounty:
    folder: Path
    residents: int
    seed: int
    generated: bool
    report: ImportReport
    accounts: list[DemoAccount]

    @property
    def name(self) -> str:
        manifest = json.loads((self.folder / "manifest.json").read_text(encoding="utf-8"))
        return str(manifest["county"]["name"])


def ensure_demo_county(store: FhirStore, residents: int, seed: int, *,
                       on_generate: Callable[[int, int], None] | None = None,
                       on_import: Callable[[ImportReport, int], None] | None = None
                       ) -> DemoCounty:
    """Generate the county's NDJSON (unless already there) and import it (resuming, so a
    second start only confirms that every line is already in the store)."""
    from kangqiao.synth.generate import generate

    folder = DEMO_DIR / f"{residents}-{seed}"
    generated = False
    if not (folder / "manifest.json").exists():
        generate(folder, residents, seed, progress=on_generate)
        generated = True
    files = [f for f in ndjson_files([folder]) if "ground-truth" not in f.parts]
    total = total_resources(folder)
    report = import_ndjson(store, LOADER, files, job=f"demo-{residents}-{seed}",
                           progress=None if on_import is None else
                           (lambda r: on_import(r, total)))
    # Demo mode only: one account per role (random passwords, shown by `kangqiao demo`).
    demo_accounts = ensure_demo_accounts(store.engine, get_settings())
    return DemoCounty(folder, residents, seed, generated, report, demo_accounts)


def total_resources(folder: Path) -> int:
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return int(sum(manifest["resources"].values()))



def progress_bar(done: int, total: int, width: int = 30) -> str:
    """``[#########---------]  45%`` for a terminal line."""
    share = min(1.0, done / total) if total else 1.0
    filled = round(share * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {share:4.0%}"
