"""Benchmark the synthetic-county generator.

    .venv/bin/python bench/synth.py [--residents 5000] [--seed 1] [--iter-only]

Prints residents/s and resources/s for writing NDJSON (and, with --iter-only, for the
in-memory stream alone), plus peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kangqiao.synth import generate, iter_resources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--residents", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--iter-only", action="store_true", help="stream without writing")
    parser.add_argument("--out", type=Path, default=None, help="keep the output here")
    args = parser.parse_args()
    if args.iter_only:
        started = time.perf_counter()
        n = sum(1 for _ in iter_resources(args.residents, args.seed))
        secs = time.perf_counter() - started
        print(f"iter_resources: {args.residents:,} residents, {n:,} resources in {secs:.2f} s")
        print(f"  {args.residents / secs:,.0f} residents/s, {n / secs:,.0f} resources/s")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = args.out or Path(tmp)
            report = generate(out, args.residents, args.seed)
            print(
                f"generate: {report.residents:,} residents, {report.resources:,} resources "
                f"in {report.seconds:.2f} s"
            )
            print(
                f"  {report.residents_per_second:,.0f} residents/s, "
                f"{report.resources_per_second:,.0f} resources/s"
            )
            size = sum(p.stat().st_size for p in out.rglob("*.ndjson"))
            print(f"  output {size / 1e6:,.1f} MB NDJSON")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
