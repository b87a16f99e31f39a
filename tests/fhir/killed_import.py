"""A bulk import killed (SIGKILL) after a number of committed batches, in a child process:
what a crash or an operator's ``kill -9`` leaves behind, for the resume tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import orjson
    from kangqiao.fhir.bulk import importer
    from kangqiao.fhir.store.db import make_engine
    from kangqiao.fhir.store.store import FhirStore
    from kangqiao.security.gate import SYSTEM
    url, path, after, options = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    batches = [0]
    original = importer._commit_batch
    def crash_after(*args, **kwargs):
        original(*args, **kwargs)
        batches[0] += 1
        if batches[0] == after:
            os.kill(os.getpid(), signal.SIGKILL)
    importer._commit_batch = crash_after
    store = FhirStore(make_engine(url))
    importer.import_ndjson(store, SYSTEM, [Path(path)], workers=0, **orjson.loads(options))
""")


def kill_import_after(url: str, path: Path, batches: int, **options: object) -> None:
    """Import ``path`` into ``url`` with ``options`` (``import_ndjson``'s keywords) and kill
    the process right after its ``batches``-th committed batch."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT, url, str(path), str(batches),
                           orjson.dumps(options).decode()],
                          timeout=120, capture_output=True, text=True, env={**os.environ})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
