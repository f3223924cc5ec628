"""The first /v1/embeddings call after start, with the model warm-up off and on
(POSTURIO_EMBEDDINGS_WARMUP). With it on, the call is made once the server has logged
the model loaded — what a person reading the banner would do — and the load's own
duration is printed beside it. The second call is the steady-state reference.

Run: .venv/bin/python -m bench.first_embedding
Nothing is asserted; figures are printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.gateway import make_tenant, wait_http
from bench.services import embedded_services
from posturio.platform.embedded import free_port


def embed(base: str, key: str) -> float:
    started = time.perf_counter()
    r = httpx.post(
        f"{base}/v1/embeddings",
        json={"model": "text-embedding-local", "input": "hello"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=300,
    )
    r.raise_for_status()
    return time.perf_counter() - started


def loaded_after(log: Path) -> float:
    """Seconds the background load took, once the server says it is done."""
    while True:
        for line in log.read_text().splitlines():
            if '"embedding_model_loaded"' in line:
                return float(json.loads(line)["seconds"])
        time.sleep(0.2)


def main() -> None:
    logs = Path(tempfile.mkdtemp(prefix="posturio-first-embedding-"))
    with embedded_services() as settings:
        key = asyncio.run(make_tenant(settings, "first-embedding"))
        for warm in ("false", "true"):
            port, log = free_port(), logs / f"serve-warmup-{warm}.log"
            base = f"http://127.0.0.1:{port}"
            env = {
                **os.environ,
                "POSTURIO_PORT": str(port),
                "POSTURIO_LOG_LEVEL": "info",
                "POSTURIO_LOG_JSON": "true",
                "POSTURIO_EMBEDDINGS_WARMUP": warm,
            }
            with open(log, "wb") as out:
                server = subprocess.Popen(
                    [sys.executable, "-m", "posturio.cli", "serve"], stdout=out, stderr=out, env=env
                )
            try:
                wait_http(f"{base}/readyz")
                load = loaded_after(log) if warm == "true" else None
                first, second = embed(base, key), embed(base, key)
            finally:
                server.terminate()
                server.wait(30)
            before = f"background load {load:.1f} s, then " if load is not None else ""
            print(
                f"warm-up {warm:<5}: {before}first call {first:.2f} s, second {second:.3f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
