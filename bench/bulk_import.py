"""Bulk NDJSON import throughput on SQLite and PostgreSQL, against the raw speed of the store.

Generates a synthetic county (kangqiao synth), imports its NDJSON with ``kangqiao import``'s
code path (validation, versioning, search index, outbox, checkpoints), and compares with the
physical limit: the same JSON rows inserted into a bare table (type, id, content) with no
validation and no index. Prints resources/s and the ratio.

    uv run python bench/bulk_import.py [--residents 5000] [--backend sqlite|postgresql|both]
                                       [--workers N] [--batch-size N] [--data DIR]
                                       [--indexes auto|defer|keep]

Also printed: CPU time per resource of the writer (this process) and of the workers, and the
peak resident memory of each (so that "memory bounded" is measured, not assumed). On a loaded
machine the CPU figures are the steadier ones.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import orjson
from fresh_db import fresh_url
from sqlalchemy import Column, MetaData, String, Table, Text

from kangqiao.fhir.bulk.importer import import_ndjson, ndjson_files
from kangqiao.fhir.store.db import bulk_insert, make_engine
from kangqiao.fhir.store.migrate import upgrade
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM
from kangqiao.synth.generate import generate


def raw_rate(url: str, files: list[Path]) -> tuple[int, float]:
    """Insert (type, id, content) rows as fast as the database takes them."""
    engine = make_engine(url)
    table = Table("raw", MetaData(), Column("resource_type", String(64)),
                  Column("id", String(64)), Column("content", Text))
    table.metadata.create_all(engine)
    n = 0
    start = time.perf_counter()
    with engine.begin() as conn:
        batch: list[dict[str, str]] = []
        for path in files:
            with path.open("rb") as f:
                for line in f:
                    resource = orjson.loads(line)
                    batch.append({"resource_type": resource["resourceType"],
                                  "id": resource["id"], "content": line.decode()})
                    if len(batch) == 5000:
                        bulk_insert(conn, table, batch)
                        n += len(batch)
                        batch = []
        bulk_insert(conn, table, batch)
        n += len(batch)
    seconds = time.perf_counter() - start
    engine.dispose()
    return n, n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--residents", type=int, default=5000)
    parser.add_argument("--backend", default="both", choices=["sqlite", "postgresql", "both"])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=None,
                        help="NDJSON folder to import instead of generating one")
    parser.add_argument("--indexes", default="auto", choices=["auto", "defer", "keep"],
                        help="build the search indexes once at the end (defer), keep them up "
                        "row by row (keep), or as `kangqiao import` decides (auto: by size)")
    args = parser.parse_args()
    defer = {"auto": None, "defer": True, "keep": False}[args.indexes]
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = args.data
        if folder is None:
            folder = tmp / "county"
            generate(folder, args.residents, 7)
        files = [f for f in ndjson_files([folder]) if "ground-truth" not in f.parts]
        total = sum(1 for f in files for _ in f.open("rb"))
        print(f"{total:,} resources in {len(files)} files")
        for backend in backends:
            url = fresh_url(backend, tmp, "kangqiao_bench_import")
            upgrade(url)
            store = FhirStore(make_engine(url))
            before = _cpu()
            report = import_ndjson(store, SYSTEM, files, workers=args.workers,
                                   batch_size=args.batch_size, defer_indexes=defer)
            writer, workers = (b - a for a, b in zip(before, _cpu(), strict=True))
            store.engine.dispose()
            assert not report.rejected, report.rejected[:3]
            _, raw = raw_rate(fresh_url(backend, tmp, "kangqiao_bench_raw"), files)
            n = report.accepted
            print(f"{backend:>10}: import {report.rate:,.0f} resources/s; raw insert "
                  f"{raw:,.0f} rows/s; import = {report.rate / raw:.0%} of raw")
            print(f"{'':>10}  CPU per resource: writer {writer / n * 1e6:.0f} µs, workers "
                  f"{workers / n * 1e6:.0f} µs; peak RSS: writer {_peak_mb('self'):.0f} MB, "
                  f"largest worker {_peak_mb('children'):.0f} MB")


def _cpu() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its finished children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _peak_mb(who: str) -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF if who == "self"
                               else resource.RUSAGE_CHILDREN)
    return usage.ru_maxrss / 1024  # KiB on Linux


if __name__ == "__main__":
    main()
