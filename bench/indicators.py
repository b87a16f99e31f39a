"""All catalogue indicators for all strata on DuckDB: cold start and a day's refresh.

Generates a synthetic county (``kangqiao.synth``), splits off its last day of data as
"today's" NDJSON, then times

- **full**: a cold start (new DuckDB file) over the whole county: every view, derived
  table, fact and all strata of every indicator for the year and its months;
- **incremental**: a store built on everything before the last day, refreshed with
  the last day's NDJSON and re-aggregated for all strata.

    .venv/bin/python bench/indicators.py [--residents 100000] [--year 2026] [--keep DIR]
        [--county DIR] [--reuse] [--skip-full] [--profile N] [--threads N] [--parquet]

``--parquet``: the cold start reads the county as typed Parquet (``kangqiao view
to-parquet``, written once, as a Parquet export would be; its time is printed apart)
instead of parsing the NDJSON.

CPU time is this process's (DuckDB's threads included); print the load average with it.

Issue 7 target at 1,000,000 residents: full <= 30 s, incremental <= 2 s.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from kangqiao.analytics.indicators import STRATA, IndicatorStore
from kangqiao.analytics.indicators.engine import input_files
from kangqiao.analytics.parquet import ndjson_to_parquet
from kangqiao.synth.generate import generate

DATED = (
    ("period", "start"),
    ("effectiveDateTime",),
    ("authoredOn",),
    ("sent",),
    ("issued",),
    ("created",),
    ("recordedDate",),
)


def _day(r: dict[str, Any]) -> str | None:
    for path in DATED:
        v: Any = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if isinstance(v, str):
            return v[:10]
    return None


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def split_last_day(county: Path, base: Path, new: Path, day: str) -> int:
    """Resources dated ``day`` or later go to ``new``; the rest to ``base``."""
    base.mkdir(parents=True)
    new.mkdir(parents=True)
    moved = 0
    for f in sorted(county.glob("*.ndjson")):
        # Line by line: the Observation file of a million residents is 3 GB.
        with f.open("rb") as src, (base / f.name).open("wb") as old:
            new_lines: list[bytes] = []
            for line in src:
                if not line.strip():
                    continue
                line = line if line.endswith(b"\n") else line + b"\n"
                d = _day(orjson.loads(line))
                if d is not None and d >= day:
                    new_lines.append(line)
                else:
                    old.write(line)
        moved += len(new_lines)
        if new_lines:
            (new / f.name).write_bytes(b"".join(new_lines))
    return moved


class Timed:
    """A DuckDB connection that records the wall and CPU time of each statement."""

    def __init__(self, con: Any) -> None:
        self._con = con
        self.log: list[tuple[float, float, str]] = []

    def execute(self, sql: str, *args: Any) -> Any:
        t, cpu = time.perf_counter(), time.process_time()
        result = self._con.execute(sql, *args)
        self.log.append((time.perf_counter() - t, time.process_time() - cpu, sql))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def _timed(store: IndicatorStore, profile: int) -> Timed | None:
    if not profile:
        return None
    timed = Timed(store.con)
    store.con = timed  # type: ignore[assignment]
    return timed


def _print_profile(timed: Timed | None, top: int, title: str) -> None:
    if timed is None:
        return
    log = timed.log
    print(f"  {title}: {len(log)} statements, {sum(w for w, _, _ in log):.2f} s wall, "
          f"{sum(c for _, c, _ in log):.2f} s CPU; slowest:")
    for wall, cpu, sql in sorted(log, reverse=True)[:top]:
        print(f"    {wall:7.2f} s  CPU {cpu:6.2f} s  {' '.join(sql.split())[:110]}")
    small = [w for w, _, _ in log if w < 0.02]
    print(f"  the {len(small)} statements under 20 ms took {sum(small):.2f} s together")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--residents", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--year", type=int, default=2026)
    ap.add_argument("--keep", type=Path, help="work directory to keep (default: a temporary one)")
    ap.add_argument("--county", type=Path,
                    help="an existing synthetic county (NDJSON of `kangqiao synth`) to use "
                         "instead of generating one, e.g. /work/data/synth-100k")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the split and the store built on the days before (in --keep)")
    ap.add_argument("--skip-full", action="store_true", help="time only the incremental refresh")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="print the N slowest SQL statements of each timed step")
    ap.add_argument("--threads", type=int, help="DuckDB threads (default: one per core)")
    ap.add_argument("--parquet", action="store_true",
                    help="full build from the county converted to Parquet (once, timed apart)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="kq-ind-"))
    work.mkdir(parents=True, exist_ok=True)
    county = args.county or work / "county"
    try:
        t = time.perf_counter()
        if not (county / "manifest.json").exists():
            report = generate(county, residents=args.residents, seed=args.seed)
            print(
                f"generated {args.residents:,} residents, {sum(report.counts.values()):,} "
                f"resources in {time.perf_counter() - t:.1f} s"
            )
        split = args.reuse and (work / "new").is_dir() and (work / "base").is_dir()
        if not split:
            for d in ("base", "new"):
                shutil.rmtree(work / d, ignore_errors=True)
            for f in work.glob("*.duckdb*"):
                f.unlink()

        source = county
        if args.parquet and not args.skip_full:
            source = work / "parquet"
            if not (args.reuse and source.is_dir()):
                shutil.rmtree(source, ignore_errors=True)
                t, cpu = time.perf_counter(), time.process_time()
                written = ndjson_to_parquet(input_files([county]), source, threads=args.threads)
                print(f"to Parquet (once, like an export): {time.perf_counter() - t:.2f} s "
                      f"(CPU {time.process_time() - cpu:.2f} s), {sum(n for _, n in written):,} "
                      f"resources, {sum(f.stat().st_size for f, _ in written) / 1e6:,.0f} MB, "
                      f"load average {_load()}")
        last = None
        if not args.skip_full:
            (work / "full.duckdb").unlink(missing_ok=True)
            t, cpu = time.perf_counter(), time.process_time()
            with IndicatorStore(work / "full.duckdb", threads=args.threads) as store:
                timed = _timed(store, args.profile)
                store.load([source], [args.year])
                rows = store.results(STRATA, suppress_below=10)
                full, full_cpu = time.perf_counter() - t, time.process_time() - cpu
                last = store.data_as_of()
                load = _load()
                # The build's WAL is folded into the file after the results, as after a
                # refresh (the data are durable at each statement's commit already).
                t, cpu = time.perf_counter(), time.process_time()
                store.checkpoint()
                ckpt, ckpt_cpu = time.perf_counter() - t, time.process_time() - cpu
            print(
                f"full (cold start, from {source.name}): {full:.2f} s (CPU {full_cpu:.2f} s), "
                f"{len(rows):,} result rows, {len(store.catalogue)} indicators, data as of {last}, "
                f"load average {load}; the deferred checkpoint after it {ckpt:.2f} s "
                f"(CPU {ckpt_cpu:.2f} s)"
            )
            _print_profile(timed, args.profile, "full")

        if not split:
            if last is None:
                with IndicatorStore() as probe:
                    probe.load([county], [args.year])
                    last = probe.data_as_of()
            assert last is not None
            n = split_last_day(county, work / "base", work / "new", last.isoformat())
            print(f"split: {n:,} resources of {last} into {work / 'new'}")
        if not (args.reuse and (work / "base.duckdb").exists()):
            (work / "base.duckdb").unlink(missing_ok=True)
            with IndicatorStore(work / "base.duckdb", threads=args.threads) as store:
                store.load([work / "base"], [args.year])
        n_new = sum(len(f.read_bytes().splitlines()) for f in (work / "new").glob("*.ndjson"))
        shutil.copy(work / "base.duckdb", work / "inc.duckdb")
        t, cpu = time.perf_counter(), time.process_time()
        with IndicatorStore(work / "inc.duckdb", threads=args.threads) as store:
            t_open = time.perf_counter() - t  # compiling the views: once per process
            timed = _timed(store, args.profile)
            t, cpu = time.perf_counter(), time.process_time()
            info = store.refresh([work / "new"])
            t_refresh = time.perf_counter() - t
            rows = store.results(STRATA, suppress_below=10)
            inc, inc_cpu = time.perf_counter() - t, time.process_time() - cpu
            load = _load()
            # The refresh leaves its WAL for a later checkpoint (close() or idle time).
            t, cpu = time.perf_counter(), time.process_time()
            store.checkpoint()
            ckpt, ckpt_cpu = time.perf_counter() - t, time.process_time() - cpu
        print(
            f"incremental ({n_new:,} new resources, {info['patients']} patients, "
            f"HEARTS redone for {info.get('as_of_patients')} more, "
            f"mode {info['mode']}): {inc:.2f} s (CPU {inc_cpu:.2f} s; refresh {t_refresh:.2f} s, "
            f"aggregate {inc - t_refresh:.2f} s; opening the store {t_open:.2f} s more), "
            f"{len(rows):,} rows, load average {load}; the deferred checkpoint after it "
            f"{ckpt:.2f} s (CPU {ckpt_cpu:.2f} s)"
        )
        _print_profile(timed, args.profile, "incremental")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
