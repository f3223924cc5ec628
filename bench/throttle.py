"""Do the public path's throttles hold? A bounded load test on loopback: several client
addresses, each with its own demo key, hammer /v1/chat/completions for a few seconds;
two more addresses share one key; and one address asks for signup challenges in a loop.
Reports requests accepted and refused per second per address.

Run: .venv/bin/python -m bench.throttle [--seconds 5]
Nothing is asserted: the figures are printed beside what the plan allows.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

import httpx

from bench.services import embedded_services, running_server
from posturio.config import Settings
from posturio.platform import signup
from posturio.platform.db import create_engine, create_sessionmaker

BODY = {"model": "echo", "messages": [{"role": "user", "content": "hello"}]}


async def demo_key(settings: Settings, n: int) -> str:
    engine = create_engine(settings)
    async with create_sessionmaker(engine)() as session, session.begin():
        made = await signup.create_demo_tenant(
            session, settings, f"bench-{n}-{time.time_ns()}@acme-corp.com", f"Bench {n}"
        )
    await engine.dispose()
    return made.key.plaintext


async def hammer(
    base: str, address: str, key: str | None, seconds: float, path: str = "/v1/chat/completions"
) -> Counter[int]:
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    transport = httpx.AsyncHTTPTransport(local_address=address)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(base_url=base, transport=transport, timeout=10) as http:
        csrf = ""
        if key is None:  # the signup path: a browser session with its CSRF token
            page = await http.get("/")
            csrf = page.text.split('name="_csrf_token" value="', 1)[1].split('"', 1)[0]

        async def one() -> None:
            while time.monotonic() < deadline:
                if key:
                    r = await http.post(path, json=BODY, headers=headers)
                else:
                    r = await http.post(path, json={}, headers={"x-csrftoken": csrf})
                statuses[r.status_code] += 1

        await asyncio.gather(*(one() for _ in range(4)))
    return statuses


async def run(base: str, settings: Settings, seconds: float) -> list[tuple[str, str, Counter[int]]]:
    keys = [await demo_key(settings, n) for n in range(4)]
    shared = keys[3]
    jobs = [
        ("127.0.1.1", "own key", hammer(base, "127.0.1.1", keys[0], seconds)),
        ("127.0.2.1", "own key", hammer(base, "127.0.2.1", keys[1], seconds)),
        ("127.0.3.1", "own key", hammer(base, "127.0.3.1", keys[2], seconds)),
        ("127.0.4.1", "shared key", hammer(base, "127.0.4.1", shared, seconds)),
        ("127.0.5.1", "shared key", hammer(base, "127.0.5.1", shared, seconds)),
        (
            "127.0.6.1",
            "signup challenge",
            hammer(base, "127.0.6.1", None, seconds, "/signup/challenge"),
        ),
    ]
    results = await asyncio.gather(*(job for _, _, job in jobs))
    return [
        (address, what, result) for (address, what, _), result in zip(jobs, results, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with embedded_services() as settings:
        with running_server() as base:
            results = asyncio.run(run(base, settings, args.seconds))
    rate = settings.demo_per_minute
    print(
        f"\nThrottles on loopback, {args.seconds:g} s, 4 concurrent clients per address. "
        f"Demo plan: {rate:g}/min per key, per address and {rate * 4:g}/min per organisation "
        f"(bucket of {rate:g}); challenges: 30/min per address (bucket of 10)."
    )
    print(f"{'address':<12}{'traffic':<18}{'accepted/s':>12}{'refused/s':>11}{'other':>8}")
    for address, what, statuses in results:
        ok = sum(n for s, n in statuses.items() if s < 300)
        refused = statuses.get(429, 0)
        other = sum(statuses.values()) - ok - refused
        print(
            f"{address:<12}{what:<18}{ok / args.seconds:>12.1f}"
            f"{refused / args.seconds:>11.1f}{other:>8}"
        )


if __name__ == "__main__":
    main()
