"""The SQL-on-FHIR v2 ``$viewdefinition-run`` (``$run``) operation over the server's data.

:func:`parse_request` turns the operation's input (a ``Parameters`` resource and/or query
parameters) into a :class:`RunRequest` and compiles the view, so an invalid view or an
unknown parameter is a 400 before any data is read. :func:`run` then reads the view's
resources through the store's search, which applies the security gate (its SQL filter
and ``may_read`` on every hit): the rows come only from resources the caller may read.
The resources are loaded page by page into DuckDB and the compiled view runs there.
"""

from __future__ import annotations

import csv
import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from kangqiao.analytics import CompiledView, ViewDefinitionError, _to_python, compile_view
from kangqiao.analytics.indicators.catalogue import load_views
from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.search.params import search_params
from kangqiao.fhir.store.store import UnitOfWork

FORMATS = {"json": "application/json", "ndjson": "application/x-ndjson", "csv": "text/csv",
           "parquet": "application/vnd.apache.parquet"}  # fmt: skip
ALIASES = {"application/json": "json", "application/fhir+json": "json",
           "application/x-ndjson": "ndjson", "application/ndjson": "ndjson",
           "text/csv": "csv", "application/vnd.apache.parquet": "parquet"}  # fmt: skip
PAGE = 1000  # resources read per search page
KNOWN = {"viewResource", "viewReference", "_format", "header", "patient", "group", "_limit",
         "_since", "resource"}  # fmt: skip


@dataclass
class RunRequest:
    compiled: CompiledView
    fmt: str
    header: bool = True
    patients: list[str] = field(default_factory=list)  # Patient ids
    groups: list[str] = field(default_factory=list)  # Group ids
    limit: int | None = None
    since: str | None = None
    resources: list[dict[str, Any]] | None = None  # inline data instead of the store's


def _bad(diagnostics: str, code: str = "invalid") -> FhirError:
    return FhirError.of(400, code, diagnostics)


def stored_views() -> dict[str, dict[str, Any]]:
    """The ViewDefinitions this server holds (the catalogue's), by id: the view's name with
    ``-`` for ``_`` (FHIR ids have no underscores)."""
    return {name.replace("_", "-"): view for name, view in load_views().items()}


def stored_view(view_id: str) -> dict[str, Any]:
    view = stored_views().get(view_id.replace("_", "-"))
    if view is None:
        raise FhirError.of(404, "not-found", f"No ViewDefinition {view_id!r}")
    return view


def _value(param: dict[str, Any]) -> Any:
    for key, value in param.items():
        if key.startswith("value"):
            return value
    if "resource" in param:
        return param["resource"]
    raise _bad(f"Parameter {param.get('name')!r} has no value")


def _reference_id(value: Any, resource_type: str, what: str) -> str:
    """``Patient/p1``, ``p1`` or a Reference ``{"reference": "Patient/p1"}`` -> ``p1``."""
    text = value.get("reference") if isinstance(value, dict) else value
    if not isinstance(text, str) or not text.strip():
        raise _bad(f"{what}: expected a reference to a {resource_type}")
    parts = text.strip().split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] != resource_type:
        raise _bad(f"{what}: {text!r} is not a reference to a {resource_type}")
    return parts[-1]


def _inputs(body: dict[str, Any] | None, query: list[tuple[str, str]]) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = list(query)
    if body is None:
        return pairs
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise _bad("The body must be a Parameters resource", "structure")
    for param in body.get("parameter") or []:
        if not isinstance(param, dict) or not isinstance(param.get("name"), str):
            raise _bad("Each parameter needs a name", "structure")
        pairs.append((param["name"], _value(param)))
    return pairs


def parse_request(body: dict[str, Any] | None, query: list[tuple[str, str]],
                  view_id: str | None = None, accept: str | None = None) -> RunRequest:  # fmt: skip
    """Validate the operation's input and compile the view (400 on any error)."""
    pairs = _inputs(body, query)
    unknown = sorted({name for name, _ in pairs} - KNOWN)
    if unknown:
        raise _bad(f"Unknown parameter(s) of $viewdefinition-run: {', '.join(unknown)}",
                   "not-supported")  # fmt: skip
    values: dict[str, list[Any]] = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value)
    for name in ("viewResource", "viewReference", "_format", "header", "_limit", "_since"):
        if len(values.get(name, [])) > 1:
            raise _bad(f"Parameter {name} is given more than once")
    view = _view(values, view_id)
    try:
        compiled = compile_view(view)
    except ViewDefinitionError as exc:
        raise _bad(f"Invalid ViewDefinition: {exc}") from None
    req = RunRequest(compiled, _format(values, accept))
    if "header" in values:
        req.header = str(values["header"][0]).lower() not in ("false", "0")
    req.patients = [_reference_id(v, "Patient", "patient") for v in _flat(values, "patient")]
    req.groups = [_reference_id(v, "Group", "group") for v in _flat(values, "group")]
    if "_limit" in values:
        limit = values["_limit"][0]
        try:
            req.limit = int(limit)
        except (TypeError, ValueError):
            raise _bad(f"_limit must be a positive integer, not {limit!r}") from None
        if req.limit < 1:
            raise _bad("_limit must be a positive integer")
    if "_since" in values:
        req.since = str(values["_since"][0])
    if "resource" in values:
        resources = [orjson.loads(r) if isinstance(r, str) else r for r in values["resource"]]
        if not all(isinstance(r, dict) and "resourceType" in r for r in resources):
            raise _bad("Each resource parameter must be a FHIR resource")
        req.resources = resources
    if (req.patients or req.groups) and not _patient_param(compiled.view.resource):
        raise _bad(f"{compiled.view.resource} has no patient to filter on", "not-supported")
    return req


def _flat(values: dict[str, list[Any]], name: str) -> list[Any]:
    """Repeated parameters, and comma-separated lists in query strings."""
    out: list[Any] = []
    for v in values.get(name, []):
        out += [s for s in v.split(",") if s] if isinstance(v, str) else [v]
    return out


def _view(values: dict[str, list[Any]], view_id: str | None) -> dict[str, Any]:
    given = [n for n in ("viewResource", "viewReference") if n in values]
    if view_id is not None:
        if given:
            raise _bad(f"{given[0]} cannot be given with a ViewDefinition id in the URL")
        return stored_view(view_id)
    if len(given) != 1:
        raise _bad("Give exactly one of viewResource and viewReference", "required")
    if given[0] == "viewReference":
        return stored_view(_reference_id(values["viewReference"][0], "ViewDefinition",
                                         "viewReference"))  # fmt: skip
    view = values["viewResource"][0]
    if isinstance(view, str):
        try:
            view = orjson.loads(view)
        except orjson.JSONDecodeError as exc:
            raise _bad(f"viewResource is not JSON: {exc}") from None
    if not isinstance(view, dict):
        raise _bad("viewResource must be a ViewDefinition resource")
    return view


def _format(values: dict[str, list[Any]], accept: str | None) -> str:
    if "_format" in values:
        raw = str(values["_format"][0]).strip().lower()
        fmt = ALIASES.get(raw, raw)
        if fmt not in FORMATS:
            raise _bad(f"_format {raw!r} is not supported; use one of {', '.join(FORMATS)}",
                       "not-supported")  # fmt: skip
        return fmt
    for part in (accept or "").split(","):
        wanted = ALIASES.get(part.split(";")[0].strip().lower())
        if wanted:
            return wanted
    return "ndjson"  # the operation's default


def _patient_param(resource_type: str) -> str | None:
    """The search parameter that ties a resource of this type to a patient."""
    if resource_type == "Patient":
        return "_id"
    params = search_params(resource_type)
    return next((p for p in ("patient", "subject", "beneficiary") if p in params), None)


def _criteria(req: RunRequest, uow: UnitOfWork) -> list[tuple[str, str]] | None:
    """Search parameters of the request; None when the patient filter matches no one."""
    rtype = req.compiled.view.resource
    params: list[tuple[str, str]] = []
    if req.since:
        params.append(("_lastUpdated", f"ge{req.since}"))
    if not (req.patients or req.groups):
        return params
    ids = list(req.patients)
    for group_id in req.groups:  # read through the gate: 404 when hidden or absent
        group = uow.read("Group", group_id).content or {}
        for member in group.get("member") or []:
            ref = (member.get("entity") or {}).get("reference", "")
            if ref.startswith("Patient/") and not member.get("inactive"):
                ids.append(ref.split("/", 1)[1])
    if not ids:
        return None
    name = _patient_param(rtype)
    assert name is not None
    value = ",".join(sorted(set(ids))) if name == "_id" else ",".join(
        f"Patient/{i}" for i in sorted(set(ids)))  # fmt: skip
    return [*params, (name, value)]


def _load(con: Any, docs: list[str]) -> None:
    con.execute("INSERT INTO _src SELECT CAST(unnest($1::VARCHAR[]) AS JSON)", [docs])


def run(req: RunRequest, uow: UnitOfWork) -> tuple[bytes, str]:
    """The view's rows over what the caller may read, serialised; with the media type."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("CREATE TEMP TABLE _src (resource JSON)")
        query = req.compiled.sql("_src")
        limited = f"SELECT * FROM ({query}) LIMIT {req.limit}" if req.limit else query
        if req.resources is not None:
            _load(con, [orjson.dumps(r).decode() for r in req.resources])
        else:
            _read_into(con, req, uow, f"SELECT count(*) FROM ({limited})")
        try:
            if req.fmt == "parquet":
                return _parquet(con, limited), FORMATS["parquet"]
            found = _to_python(con.execute(limited).fetchall(), req.compiled.columns)
        except duckdb.InvalidInputException as exc:
            raise FhirError.of(422, "processing", str(exc).split("Error: ", 1)[-1]) from None
    finally:
        con.close()
    return _serialise(found, req), FORMATS[req.fmt]


def _read_into(con: Any, req: RunRequest, uow: UnitOfWork, count_sql: str) -> None:
    params = _criteria(req, uow)
    if params is None:
        return
    after: tuple[str, str] | None = None
    while True:
        page = uow.search(req.compiled.view.resource, params, count=PAGE, after=after,
                          total="none")  # fmt: skip
        docs = [orjson.dumps(s.content).decode() for s in page.items if s.content]
        if docs:
            _load(con, docs)
        if not page.more_after or page.last_key is None:
            return
        if req.limit and con.execute(count_sql).fetchone()[0] >= req.limit:
            return
        after = page.last_key


def _parquet(con: Any, query: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "rows.parquet"
        con.execute(f"COPY ({query}) TO '{target}' (FORMAT parquet)")
        return target.read_bytes()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


def _serialise(found: list[dict[str, Any]], req: RunRequest) -> bytes:
    if req.fmt == "json":
        return orjson.dumps(found)
    if req.fmt == "ndjson":
        return b"".join(orjson.dumps(r) + b"\n" for r in found)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if req.header:
        writer.writerow(req.compiled.view.column_names)
    for row in found:
        writer.writerow([_cell(v) for v in row.values()])
    return out.getvalue().encode()
