"""SQL spellings of the operations the view compiler needs: DuckDB (the default) and
Spark SQL. The compiler (:mod:`.fhirpath_sql`, :mod:`.viewsql` ...) writes no
engine-specific text itself; every list, struct, cast, error and string function it
emits comes from one of these methods, so the two engines share one compiler.

The Spark dialect covers struct mode (resources parsed with a schema of the elements the
view reads, Spark's ``from_json``); whole-document JSONPath mode is DuckDB's only.
"""

from __future__ import annotations

SQL_TYPE = {"str": "VARCHAR", "int": "BIGINT", "num": "DOUBLE", "bool": "BOOLEAN", "json": "JSON"}


def sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Dialect:
    """DuckDB."""

    name = "duckdb"

    # --- types and literals ------------------------------------------------------------
    def lit(self, text: str) -> str:
        """A string literal."""
        return sql_str(text)

    def type(self, kind: str, collection: bool = False) -> str:
        return SQL_TYPE[kind] + ("[]" if collection else "")

    def null(self, kind: str = "json") -> str:
        return f"NULL::{self.type(kind)}"

    def empty(self, kind: str = "json") -> str:
        return f"[]::{self.type(kind, True)}"

    def no_items(self) -> str:
        """An empty list whose item type comes from the context (CASE, coalesce)."""
        return "[]"

    def array(self, items: list[str]) -> str:
        return "[" + ", ".join(items) + "]"

    def struct(self, values: dict[str, str]) -> str:
        return "{" + ", ".join(f"{self.lit(k)}: {v}" for k, v in values.items()) + "}"

    def field(self, expr: str, name: str) -> str:
        return f'{expr}."{name}"'

    def ident(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    # --- lists -------------------------------------------------------------------------
    def size(self, lst: str) -> str:
        return f"len({lst})"

    def explode(self, lst: str) -> str:
        """One row per item of ``lst`` (in a select list)."""
        return f"unnest({lst})"

    def at(self, lst: str, pos: str) -> str:
        """Item ``pos`` (1-based; -1 is the last) or NULL."""
        return f"{lst}[{pos}]"

    def concat(self, lists: list[str]) -> str:
        return f"list_concat({', '.join(lists)})"

    def distinct(self, lst: str) -> str:
        return f"list_distinct({lst})"

    def contains(self, lst: str, item: str) -> str:
        return f"list_contains({lst}, {item})"

    def prepend(self, item: str, lst: str) -> str:
        return f"list_prepend({item}, {lst})"

    def join(self, lst: str, sep: str) -> str:
        return f"array_to_string({lst}, {sep})"

    def lam(self, params: str, body: str) -> str:
        return f"lambda {params}: {body}"

    def transform(self, lst: str, var: str, body: str) -> str:
        return f"list_transform({lst}, {self.lam(var, body)})"

    def index0(self, param: str) -> str:
        """The 0-based BIGINT position of an item, from a transform's index parameter."""
        return f"CAST({param} - 1 AS BIGINT)"

    def filter(self, lst: str, var: str, body: str) -> str:
        return f"list_filter({lst}, {self.lam(var, body)})"

    def any_match(self, lst: str, var: str, body: str) -> str:
        """Whether ``body`` (never NULL) holds for an item of ``lst``."""
        return f"({self.size(self.filter(lst, var, body))} > 0)"

    def flatten(self, lst: str) -> str:
        return f"flatten({lst})"

    # --- scalars -----------------------------------------------------------------------
    def error(self, message: str) -> str:
        return f"error({self.lit(message)})"

    def int_div(self, a: str, b: str) -> str:
        return f"CAST(trunc({a} / {b}) AS BIGINT)"

    def full_match(self, s: str, pattern: str) -> str:
        return f"regexp_full_match({s}, {self.lit(pattern)})"

    def starts_with(self, s: str, prefix: str) -> str:
        return f"starts_with({s}, {prefix})"

    def has_text(self, s: str, part: str) -> str:
        return f"contains({s}, {part})"

    def substr_from(self, s: str, start: int) -> str:
        """``s`` from the 1-based character ``start`` on."""
        return f"substr({s}, {start})"

    def split_part(self, s: str, sep: str, n: int) -> str:
        """Part ``n`` of ``s`` split at the text ``sep`` (negative: from the end; '' when
        there is no such part). Not DuckDB's split_part: DuckDB 2.0.0 cannot bind
        ``split_part(x, ...) = 'text'`` when x is NULL in every row (e.g. a day's data in
        which no Observation has an encounter): 'BindBuiltinScalarFunction did not return
        a BoundFunctionExpression'."""
        return f"coalesce(string_split({s}, {sep})[{n}], '')"

    def find(self, s: str, pattern: str) -> str:
        return f"regexp_matches({s}, {self.lit(pattern)})"

    def round_to(self, x: str, digits: str) -> str:
        """``x`` rounded to ``digits`` decimal places (``digits`` may vary per row)."""
        return f"round({x}, {digits})"

    def last_day(self, month: str) -> str:
        """The last day (``YYYY-MM-DD``) of the month ``YYYY-MM``."""
        return f"strftime(last_day(TRY_CAST({month} || '-01' AS DATE)), '%Y-%m-%d')"

    def json_get(self, root: str, path: str) -> str:
        return f"json_extract({root}, {self.lit(path)})"

    def json_get_typed(self, root: str, path: str, kind: str, many: bool) -> str:
        if kind == "str":
            return f"json_extract_string({root}, {self.lit(path)})"
        if kind == "json":
            return self.json_get(root, path)
        return f"TRY_CAST({self.json_get(root, path)} AS {self.type(kind, many)})"

    def convert(self, sql: str, src: str, dst: str) -> str:
        """Convert a scalar of kind ``src`` to kind ``dst``."""
        if src == dst:
            return sql
        if src == "json":
            return f"({sql}->>'$')" if dst == "str" else f"TRY_CAST({sql} AS {self.type(dst)})"
        if dst == "json":
            return f"to_json({sql})"
        return f"TRY_CAST({sql} AS {self.type(dst)})"


SPARK_TYPE = {"str": "STRING", "int": "BIGINT", "num": "DOUBLE", "bool": "BOOLEAN",
              "json": "STRING"}  # fmt: skip


_UNBRACKET = r"^\[(.*)\]$"  # the item inside a one-item JSON array


class SparkDialect(Dialect):
    """Spark SQL (3.4+ / 4.x) with ANSI mode off (a failed ``TRY_CAST`` or a missing list
    item is NULL, as on DuckDB); string literals escape backslashes and quotes. A JSON value is its
    JSON text: Spark's reader keeps an object or array found where the schema says
    ``STRING`` as text, which is what a view column of a complex value returns."""

    name = "spark"

    def lit(self, text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def type(self, kind: str, collection: bool = False) -> str:
        t = SPARK_TYPE[kind]
        return f"ARRAY<{t}>" if collection else t

    def null(self, kind: str = "json") -> str:
        return f"CAST(NULL AS {self.type(kind)})"

    def empty(self, kind: str = "json") -> str:
        return f"CAST(array() AS {self.type(kind, True)})"

    def no_items(self) -> str:
        return "array()"

    def array(self, items: list[str]) -> str:
        return "array(" + ", ".join(items) + ")"

    def struct(self, values: dict[str, str]) -> str:
        return "named_struct(" + ", ".join(f"{self.lit(k)}, {v}" for k, v in values.items()) + ")"

    def field(self, expr: str, name: str) -> str:
        return f"{expr}.{self.ident(name)}"

    def ident(self, name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def size(self, lst: str) -> str:
        return f"size({lst})"

    def explode(self, lst: str) -> str:
        return f"explode({lst})"

    def at(self, lst: str, pos: str) -> str:
        if pos.lstrip("-").isdigit():
            return f"try_element_at({lst}, {pos})"
        return f"(CASE WHEN {pos} > 0 THEN try_element_at({lst}, CAST({pos} AS INT)) END)"

    def concat(self, lists: list[str]) -> str:
        return f"concat({', '.join(lists)})"

    def distinct(self, lst: str) -> str:
        return f"array_distinct({lst})"

    def contains(self, lst: str, item: str) -> str:
        return f"array_contains({lst}, {item})"

    def prepend(self, item: str, lst: str) -> str:
        return f"concat(array({item}), {lst})"

    def join(self, lst: str, sep: str) -> str:
        return f"array_join({lst}, {sep})"

    def lam(self, params: str, body: str) -> str:
        return f"({params}) -> {body}" if "," in params else f"{params} -> {body}"

    def transform(self, lst: str, var: str, body: str) -> str:
        return f"transform({lst}, {self.lam(var, body)})"

    def index0(self, param: str) -> str:
        return f"CAST({param} AS BIGINT)"

    def filter(self, lst: str, var: str, body: str) -> str:
        return f"filter({lst}, {self.lam(var, body)})"

    def any_match(self, lst: str, var: str, body: str) -> str:
        # one interpreted lambda that stops at the first match, no array built
        return f"exists({lst}, {self.lam(var, body)})"

    def error(self, message: str) -> str:
        return f"raise_error({self.lit(message)})"

    def int_div(self, a: str, b: str) -> str:
        return f"CAST(CAST({a} AS DOUBLE) / {b} AS BIGINT)"

    def full_match(self, s: str, pattern: str) -> str:
        return f"({s} RLIKE {self.lit('^(?:' + pattern + ')$')})"

    def starts_with(self, s: str, prefix: str) -> str:
        return f"startswith({s}, {prefix})"

    def has_text(self, s: str, part: str) -> str:
        return f"(instr({s}, {part}) > 0)"

    def split_part(self, s: str, sep: str, n: int) -> str:
        return f"split_part({s}, {sep}, {n})"

    def find(self, s: str, pattern: str) -> str:
        return f"({s} RLIKE {self.lit(pattern)})"

    def round_to(self, x: str, digits: str) -> str:  # Spark's round needs a constant scale
        return f"(round(({x}) * pow(10, {digits})) / pow(10, {digits}))"

    def last_day(self, month: str) -> str:
        return f"CAST(last_day(TRY_CAST({month} || '-01' AS DATE)) AS STRING)"

    def json_get(self, root: str, path: str) -> str:
        raise NotImplementedError("JSONPath mode is DuckDB's only")

    def convert(self, sql: str, src: str, dst: str) -> str:
        if src == dst:
            return sql
        if src == "json":  # JSON text; a JSON string arrives without its quotes
            return sql if dst == "str" else f"TRY_CAST({sql} AS {self.type(dst)})"
        if dst == "json":
            return (f"(CASE WHEN {sql} IS NULL THEN NULL ELSE "
                    f"regexp_extract(to_json(array({sql})), {self.lit(_UNBRACKET)}, 1) END)")
        return f"TRY_CAST({sql} AS {self.type(dst)})"

    def parse(self, text: str, structure: object) -> str:
        """JSON text parsed into a struct-mode structure."""
        return f"from_json({text}, {self.lit(self.schema(structure))})"

    def text_get(self, text: str, name: str) -> str:
        """The JSON text of member ``name`` of the JSON object ``text`` (NULL if absent)."""
        return f"get_json_object({text}, {self.lit('$.' + name)})"

    def text_items(self, text: str) -> str:
        """The items of the JSON array ``text`` as JSON texts (no items for NULL)."""
        return f"coalesce(from_json({text}, 'ARRAY<STRING>'), array())"

    def schema(self, structure: object) -> str:
        """A struct-mode structure (:meth:`SNode.structure`) as a Spark DDL type."""
        if isinstance(structure, list):
            return f"ARRAY<{self.schema(structure[0])}>"
        if isinstance(structure, dict):
            return "STRUCT<" + ", ".join(f"{self.ident(k)}: {self.schema(v)}"
                                         for k, v in structure.items()) + ">"  # fmt: skip
        return {"VARCHAR": "STRING", "JSON": "STRING"}.get(str(structure), str(structure))
