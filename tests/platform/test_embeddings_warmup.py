"""The first `/v1/embeddings` call does not pay for loading the model: `posturio serve`
loads it once, in the background, from the start; calls that arrive during that load
wait for it instead of loading a second copy."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from posturio.platform.embedded import free_port
from posturio.platform.sentence_model import WARM_UP_THREAD


@pytest.fixture
def warming_server(gateway_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A fresh `posturio serve` (a fresh process: nothing loaded yet) logging JSON at info."""
    port = free_port()
    log = tmp_path / "serve.log"
    env = {
        **gateway_env,
        "POSTURIO_PORT": str(port),
        "POSTURIO_EMBEDDINGS_WARMUP": "true",
        "POSTURIO_LOG_LEVEL": "info",
        "POSTURIO_LOG_JSON": "true",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "posturio.cli", "serve"], env=env, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(base):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "posturio serve did not become ready"
            time.sleep(0.1)
        yield base, log
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _events(log: Path, event: str) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # not one of ours (e.g. a library printing)
        if isinstance(record, dict) and record.get("event") == event:
            found.append(record)
    return found


@pytest.mark.timeout(180)
async def test_the_model_is_loaded_once_at_start_and_first_calls_wait_for_it(
    warming_server: tuple[str, Path], make_tenant: Any
) -> None:
    base, log = warming_server
    tenant = await make_tenant()
    headers = {"Authorization": f"Bearer {tenant.gateway_key}"}
    # Ready already (readiness did not wait for the model), the load still running: two
    # first calls at once, as soon as the server answers.
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as http:
        replies = await asyncio.gather(
            *(
                http.post("/v1/embeddings", json={"model": "text-embedding-local", "input": text})
                for text in ("the cat sat", "quarterly revenue")
            )
        )
    for reply in replies:
        assert reply.status_code == 200, reply.text
        assert len(reply.json()["data"][0]["embedding"]) == 384
    loads = _events(log, "embedding_model_loaded")
    # Once, by the start-up warm-up: neither call loaded a copy of its own.
    assert [load["by"] for load in loads] == [WARM_UP_THREAD], loads
