"""The Spark engine: the same compiled views, in the Spark SQL dialect, on Apache Spark.

One SparkSession per process (:func:`session`), started on first use: local mode
(``KANGQIAO_SPARK_MASTER=local[2]``, the default) runs Spark inside this process, bound to
the loopback interface with the web UI off; a master URL (``spark://host:7077``, ``yarn``,
``k8s://...``) runs the views on a cluster, which then reads its inputs from storage every
executor sees (HDFS, S3, a shared file system). Under ``spark-submit`` the session the
launcher configured is used as it is.

Documents are read as lines of JSON text and parsed once each by ``from_json`` into the
structure of the elements the view reads (the compiler's struct mode), or from typed
Parquet (``kangqiao view to-parquet``), whose columns are rebuilt into that structure.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kangqiao.analytics.dialects import SparkDialect
from kangqiao.analytics.sources import is_parquet
from kangqiao.analytics.viewdef import View, ViewDefinitionError
from kangqiao.analytics.viewsql import OutColumn, ViewCompiler

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# SQL semantics the compiled views rely on (see SparkDialect); set on every session used.
SQL_CONF = {
    "spark.sql.ansi.enabled": "false",
    "spark.sql.parser.escapedStringLiterals": "false",
    # HotSpot does not JIT a method over 8,000 bytes: a view of many lambdas (the
    # observation view: 10.7 kB) ran its fused stage interpreted, 3.8x slower than
    # Spark's per-operator code. Spark's own advice for HotSpot is this limit.
    "spark.sql.codegen.hugeMethodLimit": "8000",
}
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.shuffle.partitions": "2",
    "spark.sql.session.timeZone": "UTC",
    # A county's typed Parquet is small for its rows (3 MB for 423,105 episodes): at the
    # default 4 MB cost of opening a file Spark reads such a file in one task, on one core.
    "spark.sql.files.openCostInBytes": str(1 << 20),
}

_lock = threading.Lock()
_session: SparkSession | None = None


class SparkViewError(ViewDefinitionError):
    """The view cannot run on Spark (it needs the JSONPath mode only DuckDB has)."""


def session(master: str | None = None) -> SparkSession:
    """The process's SparkSession: an active one (spark-submit, a notebook) or a new one
    on ``master`` (default: the ``KANGQIAO_SPARK_MASTER`` setting)."""
    global _session
    with _lock:
        if _session is None:
            from pyspark.sql import SparkSession

            active = SparkSession.getActiveSession()
            if active is not None:
                _session = active
            else:
                from kangqiao.settings import get_settings

                builder = SparkSession.builder.appName("kangqiao-views")
                # under spark-submit the JVM is already up with its --master and --conf
                submitted = "PYSPARK_GATEWAY_PORT" in os.environ and master is None
                url = master or get_settings().spark_master
                if not submitted:
                    builder = builder.master(url)
                if url.startswith("local") and not submitted:
                    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # loopback only
                    for key, value in LOCAL_CONF.items():
                        builder = builder.config(key, value)
                _session = builder.getOrCreate()
                _session.sparkContext.setLogLevel("ERROR")
            for key, value in SQL_CONF.items():
                _session.conf.set(key, value)
        return _session


def compile_spark(view: View) -> ViewCompiler:
    compiler = ViewCompiler(view, SparkDialect(), struct=True)
    from kangqiao.analytics.fhirpath_sql import NeedJson

    try:
        compiler.sql("_probe")
    except NeedJson as exc:
        raise SparkViewError(f"this view cannot run on the Spark engine ({exc}); "
                             f"run it on DuckDB") from None  # fmt: skip
    return compiler


def _frame(spark: SparkSession, compiler: ViewCompiler, source: DataFrame) -> DataFrame:
    name = f"_kq_src_{id(source)}"
    source.createOrReplaceTempView(name)
    return spark.sql(compiler.sql(name))


def _collect(frame: DataFrame) -> list[tuple[Any, ...]]:
    try:
        return [tuple(r) for r in frame.collect()]
    except Exception as exc:  # pyspark's errors carry the raise_error() message
        message = str(exc)
        if "multiple values found" in message or "expected a single value" in message:
            from kangqiao.analytics import ViewEvaluationError

            text = message.split("] ", 1)[-1].split(" SQLSTATE")[0]
            raise ViewEvaluationError(text) from None
        raise


def run_docs(view: View, docs: Sequence[str]) -> tuple[list[tuple[Any, ...]], list[OutColumn]]:
    """Rows of ``view`` over JSON documents held in memory.

    In local mode they go through a temporary NDJSON file, which the JVM reads itself
    (a DataFrame built from Python objects needs Python worker processes to unpickle
    them, far slower); on a cluster, whose executors cannot see that file, they do."""
    compiler = compile_spark(view)
    spark = session()
    if not str(spark.sparkContext.master).startswith("local"):
        source = spark.createDataFrame([(d,) for d in docs], "resource STRING")
        return _collect(_frame(spark, compiler, source)), compiler.output_columns()
    with tempfile.TemporaryDirectory(prefix="kq-spark-") as tmp:
        path = Path(tmp) / "docs.ndjson"
        path.write_text("".join(d + "\n" for d in docs), encoding="utf-8")  # orjson: one line
        source = spark.read.text(str(path)).withColumnRenamed("value", "resource")
        return _collect(_frame(spark, compiler, source)), compiler.output_columns()


def files_frame(view: View, files: Sequence[str]) -> tuple[DataFrame, list[OutColumn]]:
    """The rows of ``view`` over NDJSON (or .ndjson.gz) files, or over typed Parquet
    (:mod:`kangqiao.analytics.parquet`), as a lazy DataFrame."""
    compiler = compile_spark(view)
    spark = session()
    parquet = [f for f in files if is_parquet(f)]
    if not parquet:
        source = spark.read.text(list(files)).withColumnRenamed("value", "resource")
        return _frame(spark, compiler, source), compiler.output_columns()
    if len(parquet) < len(files):
        raise ViewDefinitionError("NDJSON and Parquet inputs together: convert the NDJSON "
                                  "(kangqiao view to-parquet) or run them apart")  # fmt: skip
    structure = compiler.root_node.structure()
    assert isinstance(structure, dict)  # compile_spark probed the view: resourceType at least
    frames, d = [], compiler.d
    for f in parquet:
        df = spark.read.parquet(f)
        have = {field.name: field.dataType for field in df.schema.fields}
        # several files are unioned: each must give exactly the view's structure
        exact = len(parquet) > 1
        packed = ", ".join(f"{d.lit(k)}, {_project(d, v, have.get(k), d.ident(k), exact)}"
                           for k, v in structure.items())  # fmt: skip
        frames.append(df.selectExpr(f"named_struct({packed}) AS resource"))
    source = functools.reduce(lambda a, b: a.unionAll(b), frames)
    name = f"_kq_src_{id(source)}"
    source.createOrReplaceTempView(name)
    return spark.sql(compiler.sql(name, parsed=True)), compiler.output_columns()


def _project(d: Any, need: object, have: Any, expr: str, exact: bool, depth: int = 0) -> str:
    """Spark: ``expr`` (of the Parquet type ``have``; None when the file lacks it) as the
    view's structure ``need``. Spark casts structs by position, not by name, so structs
    are rebuilt field by field; a JSON leaf becomes the element's JSON text (nulls left
    out, as Spark's from_json would give it)."""
    from pyspark.sql.types import ArrayType, StringType, StructType

    if have is None:
        return f"CAST(NULL AS {d.schema(need)})"
    if not exact and _covers(d, need, have):
        return expr  # the view reads fields by name: extra ones cost nothing, a rebuild does
    if need == "JSON":
        return f"to_json({expr})" if isinstance(have, StructType | ArrayType) else (
            f"CAST({expr} AS STRING)")  # fmt: skip
    if isinstance(have, StringType) and not isinstance(need, str):
        return f"from_json({expr}, {d.lit(d.schema(need))})"  # kept as JSON: mixed shapes
    if isinstance(need, list) and isinstance(have, ArrayType):
        x = f"_x{depth}"
        item = _project(d, need[0], have.elementType, x, exact, depth + 1)
        return f"transform({expr}, {x} -> {item})"
    if isinstance(need, dict) and isinstance(have, StructType):
        fields = {f.name: f.dataType for f in have.fields}
        packed = ", ".join(
            f"{d.lit(k)}, {_project(d, v, fields.get(k), d.field(expr, k), exact, depth)}"
            for k, v in need.items())  # fmt: skip
        return f"CASE WHEN {expr} IS NULL THEN NULL ELSE named_struct({packed}) END"
    if isinstance(need, str):
        return f"CAST({expr} AS {d.schema(need)})"
    return f"CAST(NULL AS {d.schema(need)})"  # a list where the file has one value, or the reverse


def _covers(d: Any, need: object, have: Any) -> bool:
    """``have`` holds every field of ``need`` with the same leaf types (JSON leaves aside)."""
    from pyspark.sql.types import ArrayType, StructType

    if isinstance(need, dict):
        fields = {f.name: f.dataType for f in have.fields} if isinstance(have, StructType) else {}
        return all(k in fields and _covers(d, v, fields[k]) for k, v in need.items())
    if isinstance(need, list):
        return isinstance(have, ArrayType) and _covers(d, need[0], have.elementType)
    return need != "JSON" and str(have.simpleString()) == d.schema(need).lower()


def run_files(view: View, files: Sequence[str]) -> tuple[list[tuple[Any, ...]], list[OutColumn]]:
    frame, columns = files_frame(view, files)
    return _collect(frame), columns


def write(frame: DataFrame, columns: list[OutColumn], out: str, fmt: str) -> int:
    """Write the rows to the folder ``out`` (Spark's part files; one per partition).

    CSV holds no lists: collection columns are written as JSON arrays. NDJSON writes
    columns of complex values as nested JSON, CSV and Parquet as JSON text."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    exprs = []
    for c in columns:
        col = F.col(f"`{c.name}`")
        if fmt == "csv" and c.collection:
            col = F.to_json(col)
        elif fmt == "ndjson" and c.kind == "json":
            col = F.transform(col, F.parse_json) if c.collection else F.parse_json(col)
        exprs.append(col.alias(c.name))
    # The rows are counted as they are written (an observed metric of the same job): a
    # second job reading the output back cost ~0.4 s a view, caching the rows more.
    rows = Observation()  # unnamed: a name of its own, whatever else runs
    counted = frame.select(*exprs).observe(rows, F.count(F.lit(1)).alias("n"))
    writer = counted.write.mode("overwrite")
    if fmt == "csv":
        writer.option("header", True).csv(out)
    elif fmt == "parquet":
        writer.parquet(out)
    else:
        writer.option("ignoreNullFields", False).json(out)
    return int(rows.get["n"])
