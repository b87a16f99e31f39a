"""Transaction-bundle ingest throughput through the HTTP API, on SQLite and PostgreSQL.

Starts ``kangqiao serve`` on a loopback port against a fresh database, posts transaction
bundles of ~100 entries (households: Patient, Encounter, blood-pressure and glucose
Observations, Condition, linked by urn:uuid), and prints resources/s.

    uv run python bench/ingest.py [--bundles 200] [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = os.environ.get("KANGQIAO_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    full_url = f"urn:uuid:{uuid.uuid4()}"
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"]}}


def _quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def household(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """One resident with a visit and readings: 10 resources."""
    pid = rng.randrange(10**17)
    patient = _entry({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.1", "value": f"{pid:018d}"}],
        "name": [{"text": "王秀英", "family": "王", "given": ["秀英"]}],
        "gender": rng.choice(["male", "female"]), "birthDate": f"19{rng.randrange(30, 90)}-0"
        f"{rng.randrange(1, 10)}-1{rng.randrange(0, 9)}",
        "telecom": [{"system": "phone", "value": f"139{rng.randrange(10**8):08d}"}],
        "address": [{"text": "青山县青山镇东村", "district": "青山县"}],
    })
    subject = {"reference": patient["fullUrl"]}
    encounter = _entry({"resourceType": "Encounter", "status": "finished",
                        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                  "code": "AMB"},
                        "subject": subject,
                        "period": {"start": f"2026-{1 + n % 12:02d}-05T09:00:00+08:00"}})
    out = [patient, encounter]
    for k in range(6):
        out.append(_entry({
            "resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                      "observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
            "subject": subject, "encounter": {"reference": encounter["fullUrl"]},
            "effectiveDateTime": f"2026-{1 + k:02d}-0{1 + k}T08:00:00+08:00",
            "component": [
                {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                 "valueQuantity": _quantity(rng.randrange(110, 180), "mmHg", "mm[Hg]")},
                {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                 "valueQuantity": _quantity(rng.randrange(60, 110), "mmHg", "mm[Hg]")}],
        }))
    out.append(_entry({"resourceType": "Observation", "status": "final",
                       "code": {"coding": [{"system": LOINC, "code": "1558-6"}]},
                       "subject": subject, "effectiveDateTime": "2026-06-01",
                       "valueQuantity": _quantity(rng.randrange(40, 120) / 10, "mmol/L",
                                                  "mmol/L")}))
    out.append(_entry({
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                       "condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}]},
        "subject": subject}))
    return out


def make_bundles(count: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    bundles = []
    for b in range(count):
        entries = [e for h in range(10) for e in household(rng, b * 10 + h)]
        bundles.append(orjson.dumps({"resourceType": "Bundle", "type": "transaction",
                                     "entry": entries}))
    return bundles


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _database(backend: str, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "kangqiao_bench" WITH (FORCE)'))
        conn.execute(text('CREATE DATABASE "kangqiao_bench"'))
    admin.dispose()
    return f"{PG_SERVER}/kangqiao_bench"


def run(backend: str, bundles: list[bytes], clients: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        url = _database(backend, Path(tmp))
        port = _free_port()
        env = {**os.environ, "KANGQIAO_DATABASE_URL": url}
        server = subprocess.Popen(
            [sys.executable, "-m", "kangqiao.cli", "serve", "--port", str(port),
             "--workers", str(workers)],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            base = f"http://127.0.0.1:{port}/fhir"
            _wait(base)
            headers = {"Content-Type": "application/fhir+json", "Prefer": "return=minimal",
                       "Authorization": f"Bearer {system_token(env)}"}
            with httpx.Client(timeout=120) as client:
                client.post(base, content=bundles[0], headers=headers).raise_for_status()
                start = time.perf_counter()
                _post_all(client, base, bundles[1:], headers, clients)
                elapsed = time.perf_counter() - start
        finally:
            server.terminate()
            server.wait(timeout=30)
    n = sum(len(orjson.loads(b)["entry"]) for b in bundles[1:])
    return n / elapsed


def _post_all(client: httpx.Client, base: str, bundles: list[bytes],
              headers: dict[str, str], clients: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def post(body: bytes) -> None:
        r = client.post(base, content=body, headers=headers)
        if r.status_code != 200:
            raise SystemExit(f"bundle failed: {r.status_code} {r.text[:500]}")

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(post, bundles))


def system_token(env: dict[str, str]) -> str:
    """A SMART Backend Services token for a bench client, the way an integration gets one."""
    cli = [sys.executable, "-m", "kangqiao.cli", "auth"]
    subprocess.run([*cli, "client", "create", "--name", "bench", "--id", "bench", "--secret",
                    "--scope", "system/*.cruds"], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    out = subprocess.run([*cli, "token", "--client", "bench", "--scope", "system/*.cruds"],
                         env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def _wait(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/metadata", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundles", type=int, default=150)
    parser.add_argument("--clients", type=int, default=4,
                        help="concurrent clients (several, so both server processes get work)")
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--backend", default="both",
                        choices=["sqlite", "postgresql", "both"])
    args = parser.parse_args()
    bundles = make_bundles(args.bundles + 1)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"{args.bundles} transaction bundles x 100 entries, {args.clients} concurrent "
          f"clients, {args.workers} server processes")
    for backend in backends:
        rate = run(backend, bundles, args.clients, args.workers)
        print(f"{backend:>10}: {rate:,.0f} resources/s")


if __name__ == "__main__":
    main()
