"""Cost of the security gate per request: the same reads as a system client (scopes only)
and as users whose view the policy computes, on a synthetic county.

    .venv/bin/python bench/security_overhead.py --residents 5000 [--url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from kangqiao.app import create_app
from kangqiao.fhir.bulk.importer import import_ndjson, ndjson_files
from kangqiao.fhir.store.db import make_engine
from kangqiao.fhir.store.migrate import upgrade
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security import accounts, rules
from kangqiao.security.directory import staff_with_role
from kangqiao.security.gate import SYSTEM
from kangqiao.security.oauth import user_claims
from kangqiao.security.tokens import Tokens
from kangqiao.settings import Settings
from kangqiao.synth.generate import generate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residents", type=int, default=5000)
    ap.add_argument("--url", default=None)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--dir", type=Path, default=None, help="Work folder (default: temporary).")
    args = ap.parse_args()
    tmp = args.dir or Path(tempfile.mkdtemp())
    tmp.mkdir(parents=True, exist_ok=True)
    url = args.url or f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    engine = make_engine(url)
    folder = tmp / "county"
    if not (folder / "manifest.json").exists():
        generate(folder, args.residents, 7)
    files = [f for f in ndjson_files([folder]) if "ground-truth" not in f.parts]
    import_ndjson(FhirStore(engine), SYSTEM, files, job="bench", workers=0)
    settings = Settings(database_url=url, audit_hmac_key="00" * 32)
    tokens = Tokens(settings)
    heads = {"system": tokens.issue(engine, subject="bench", scope="system/*.cruds",
                                    client_id="bench", minutes=60,
                                    claims={"role": "system"})[0]}
    for name, role, code, org in (("gp", rules.GP, "gp", "Organization/org-thc-01"),
                                  ("village", rules.VILLAGE_DOCTOR, "village-doctor", None),
                                  ("specialist", rules.SPECIALIST, "specialist", None)):
        staff = staff_with_role(engine, code, org)
        assert staff is not None
        account = accounts.find(engine, username=name) or accounts.create(
            engine, settings, username=name, password="Bench-Pass-123", role=role,
            organization=staff.organization, practitioner=staff.practitioner,
            practitioner_role=staff.practitioner_role, must_change=False)
        heads[name] = tokens.issue(engine, subject=account.id, scope="user/*.cruds",
                                   client_id="bench", minutes=60,
                                   claims=user_claims(account, "TREAT", None))[0]
    admin = accounts.find(engine, username="county") or accounts.create(
        engine, settings, username="county", password="Bench-Pass-123",
                            role=rules.COUNTY_ADMIN, must_change=False,
                            organization="Organization/org-health-commission")
    heads["countyadmin"] = tokens.issue(engine, subject=admin.id, scope="user/*.cruds",
                                        client_id="bench", minutes=60,
                                        claims=user_claims(admin, "HOPERAT", None))[0]
    client = TestClient(create_app(settings, FhirStore(engine)))
    paths = ["/fhir/Patient/pat-000001", "/fhir/Patient?_count=50",
             "/fhir/Observation?_count=50", "/fhir/Observation?code=85354-9&_count=20"]
    print(f"{args.residents} residents on {engine.dialect.name}; median ms of {args.repeat}")
    print(f"{'request':45} " + " ".join(f"{k:>12}" for k in heads))
    for path in paths:
        cells = []
        for token in heads.values():
            h = {"Authorization": f"Bearer {token}"}
            client.get(path, headers=h)
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                client.get(path, headers=h)
                times.append((time.perf_counter() - t) * 1000)
            cells.append(f"{statistics.median(times):12.1f}")
        print(f"{path:45} " + " ".join(cells))


if __name__ == "__main__":
    main()
