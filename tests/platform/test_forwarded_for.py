"""Who the client is: without a trusted proxy (the default), X-Forwarded-For is ignored,
so a client cannot pick the address its per-address throttles and signup network count;
behind a proxy named in POSTURIO_FORWARDED_ALLOW_IPS, the proxy's word is taken."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from posturio.platform.embedded import free_port
from posturio.platform.signup import _unb64, network
from tests.gateway.public_helpers import Visitor
from tests.stack_fixtures import _start, _stop


async def _challenge_from(visitor: Visitor, forwarded_for: str) -> httpx.Response:
    return await visitor.http.post(
        "/signup/challenge",
        json={},
        headers={"x-csrftoken": visitor.csrf, "x-forwarded-for": forwarded_for},
    )


def _network_of(challenge: str) -> str:
    """The client network the server signed into the challenge: the address it saw."""
    return json.loads(_unb64(challenge.partition(".")[0]))["net"]


@pytest.fixture
async def visitor(server: str) -> AsyncIterator[Visitor]:
    # From 127.0.0.1 itself: the address uvicorn trusted as a proxy by default.
    v = Visitor(server, address="127.0.0.1")
    await v.open()
    yield v
    await v.close()


async def test_a_spoofed_forwarded_for_does_not_change_the_client_address(visitor):
    r = await _challenge_from(visitor, "203.0.113.7")
    assert r.status_code == 200, r.text
    assert _network_of(r.json()["challenge"]) == network(visitor.address)

    # A new made-up address on every request still draws on this address's bucket
    # (10 at once, then 30 a minute): the throttle refuses.
    statuses = []
    for i in range(40):
        statuses.append((await _challenge_from(visitor, f"198.51.100.{i}")).status_code)
        if statuses[-1] == 429:
            break
    assert statuses[-1] == 429, statuses


@pytest.fixture(scope="module")
def behind_proxy(gateway_env: dict[str, str]) -> Iterator[str]:
    """A second server that trusts the loopback network as its reverse proxy."""
    port = free_port()
    env = {**gateway_env, "POSTURIO_PORT": str(port), "POSTURIO_FORWARDED_ALLOW_IPS": "127.0.0.0/8"}
    proc = _start(["serve"], env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            _stop(proc)
            pytest.fail("the server behind a proxy did not become ready")
        time.sleep(0.2)
    yield base
    _stop(proc)


async def test_a_trusted_proxy_names_the_client(behind_proxy):
    visitor = Visitor(behind_proxy)
    await visitor.open()
    r = await _challenge_from(visitor, "203.0.113.7")
    await visitor.close()
    assert r.status_code == 200, r.text
    assert _network_of(r.json()["challenge"]) == "203.0.113.0/24"
