"""The cost of encrypting identifiers at rest (kangqiao.security.fieldcrypt): per resource,
on bulk import and on exact search, against the same code with the protection switched off
(only possible in this benchmark, by replacing the hooks).

    uv run python bench/field_protection.py [--patients 5000] [--backend sqlite|postgresql|both]

Patients come from /work/data/synth-20k when it exists, otherwise from a generated county.
Prints microseconds per resource, resources/s of the import and search medians in ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from fresh_db import fresh_url

from kangqiao.fhir.bulk.importer import import_ndjson
from kangqiao.fhir.search import index, predicates
from kangqiao.fhir.search.index import index_rows
from kangqiao.fhir.store import db
from kangqiao.fhir.store.migrate import upgrade
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security import fieldcrypt
from kangqiao.security.gate import SYSTEM
from kangqiao.synth.generate import generate

SHARED = Path("/work/data/synth-20k/Patient.ndjson")


@contextmanager
def unprotected() -> Iterator[None]:
    """The store as it was before field protection: plain orjson, clear index values."""
    saved = (fieldcrypt.dumps, fieldcrypt.loads, index.protect_index, predicates.search_codes)
    fieldcrypt.dumps = lambda v: orjson.dumps(v).decode()  # type: ignore[assignment]
    fieldcrypt.loads = orjson.loads  # type: ignore[assignment]
    index.protect_index = lambda _r, rows: rows  # type: ignore[assignment]
    predicates.search_codes = lambda code, _mode=None: (code,)  # type: ignore[assignment]
    try:
        yield
    finally:
        (fieldcrypt.dumps, fieldcrypt.loads, index.protect_index,
         predicates.search_codes) = saved  # type: ignore[assignment]


def _per_item(fn: Callable[[Any], object], items: list[Any]) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - start) / len(items) * 1e6


def micro(patients: list[dict[str, Any]]) -> None:
    sealed = [fieldcrypt.dumps(p) for p in patients]
    plain = [orjson.dumps(p) for p in patients]
    rows = [
        ("serialise", _per_item(lambda p: orjson.dumps(p), patients),
         _per_item(fieldcrypt.dumps, patients)),
        ("deserialise", _per_item(orjson.loads, plain), _per_item(fieldcrypt.loads, sealed)),
    ]
    for p in patients:  # warm the caches (compiled paths, normalised strings) first
        index_rows(p)
    with unprotected():
        clear_index = _per_item(index_rows, patients)
    rows.append(("index rows", clear_index, _per_item(index_rows, patients)))
    print("per Patient (µs)      clear  protected")
    for name, a, b in rows:
        print(f"  {name:<18} {a:7.1f}  {b:9.1f}")


def _import(url: str, src: Path) -> tuple[FhirStore, float]:
    upgrade(url)
    store = FhirStore(db.make_engine(url))
    start = time.perf_counter()
    report = import_ndjson(store, SYSTEM, [src], workers=0)
    return store, report.accepted / (time.perf_counter() - start)


def _search_ms(store: FhirStore, params: list[tuple[str, str]], n: int = 30) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        with store.read(SYSTEM) as uow:
            found = uow.search("Patient", params, count=10, total="none").items
        times.append((time.perf_counter() - start) * 1000)
        assert len(found) == 1, params
    return statistics.median(times)


def run(backend: str, src: Path, patients: list[dict[str, Any]], tmp: Path) -> None:
    with unprotected():
        clear_store, clear_rate = _import(fresh_url(backend, tmp, "bench_clear"), src)
    store, rate = _import(fresh_url(backend, tmp, "bench_protected"), src)
    print(f"{backend}: import {len(patients):,} Patients: {clear_rate:,.0f}/s clear, "
          f"{rate:,.0f}/s protected ({rate / clear_rate - 1:+.0%})")
    probe = patients[len(patients) // 2]
    id_number = next(i["value"] for i in probe["identifier"] if "resident-id" in i["system"])
    phone = probe["telecom"][0]["value"]
    for name, params in [("identifier=ID", [("identifier", id_number)]),
                         ("phone=", [("phone", phone)]),
                         ("identifier=system|ID", [("identifier", "https://kangqiao.example"
                                                    f"/fhir/sid/resident-id|{id_number}")])]:
        with unprotected():
            clear = _search_ms(clear_store, params)
        protected = _search_ms(store, params)
        print(f"  {name:<22} {clear:6.2f} ms clear, {protected:6.2f} ms protected")
    for s in (clear_store, store):
        s.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source = SHARED
        if not source.exists():
            generate(tmp / "county", args.patients, 1)
            source = tmp / "county" / "Patient.ndjson"
        lines = source.read_bytes().splitlines()[:args.patients]
        src = tmp / "Patient.ndjson"
        src.write_bytes(b"\n".join(lines) + b"\n")
        patients = [orjson.loads(line) for line in lines]
        micro(patients)
        for backend in (["sqlite", "postgresql"] if args.backend == "both" else [args.backend]):
            run(backend, src, patients, tmp)


if __name__ == "__main__":
    main()
