"""Entry point for ``spark-submit``: ``kangqiao view run`` on the Spark engine.

    spark-submit --master yarn kangqiao/analytics/spark_job.py VIEW.json --input URL
                 [--format csv|parquet|ndjson] [--out URL]

The session spark-submit configured (master, executors, storage credentials) is used
as it is; the arguments are those of ``kangqiao view run`` without ``--engine``.
"""

from __future__ import annotations

import sys

from kangqiao.analytics.cli import app


def main(argv: list[str]) -> None:
    app(["run", *argv, "--engine", "spark"], prog_name="kangqiao-spark-job")


if __name__ == "__main__":
    main(sys.argv[1:])
