"""Streaming output: one NDJSON file per resource type (FHIR bulk-data layout), the
ground-truth files under ``ground-truth/`` and a ``manifest.json``.

Bytes are deterministic: keys sorted, no timestamps, files written in generation order.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import orjson

DUMP_OPTIONS = orjson.OPT_SORT_KEYS


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=DUMP_OPTIONS)


class NdjsonWriter:
    """Appends resources to ``<out>/<ResourceType>.ndjson``, counting them."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, IO[bytes]] = {}
        self.counts: dict[str, int] = {}

    def _file(self, name: str) -> IO[bytes]:
        f = self.files.get(name)
        if f is None:
            f = (self.out_dir / f"{name}.ndjson").open("wb", buffering=1 << 20)
            self.files[name] = f
        return f

    def write(self, resource: dict[str, Any]) -> None:
        rtype = resource["resourceType"]
        self._file(rtype).write(dumps(resource) + b"\n")
        self.counts[rtype] = self.counts.get(rtype, 0) + 1

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files.clear()

    def paths(self) -> list[Path]:
        return [self.out_dir / f"{name}.ndjson" for name in sorted(self.counts)]


class TruthWriter:
    """Ground-truth records, one JSON-lines file per kind under ``<out>/ground-truth/``
    (``.jsonl``, so bulk importers taking every ``.ndjson`` of a directory skip them)."""

    def __init__(self, out_dir: Path) -> None:
        self.dir = out_dir / "ground-truth"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, IO[bytes]] = {}
        self.counts: dict[str, int] = {}

    def record(self, kind: str, item: dict[str, Any]) -> None:
        f = self.files.get(kind)
        if f is None:
            f = (self.dir / f"{kind}.jsonl").open("wb", buffering=1 << 20)
            self.files[kind] = f
        f.write(dumps(item) + b"\n")
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files.clear()


def write_json(path: Path, obj: Any) -> None:
    path.write_bytes(orjson.dumps(obj, option=DUMP_OPTIONS | orjson.OPT_INDENT_2) + b"\n")
