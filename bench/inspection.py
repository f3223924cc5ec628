"""Prompt inspection latency: clean 2 KB, 2 KB with findings, 100 KB.

Run: .venv/bin/python -m bench.inspection
(Peers — detect-secrets, presidio — come with the policy issue's labelled corpus.)
"""

from __future__ import annotations

import random
import statistics
import string
import time

from posturio.gateway.inspection.engine import Inspector

WORDS = (
    "the quarterly report shows revenue growth in every region while costs stayed flat "
    "please summarise the attached notes for the leadership meeting on thursday and "
    "list the open risks with owners and dates"
).split()


def prose(chars: int, rng: random.Random) -> str:
    out: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    return " ".join(out)[:chars]


def timed(inspector: Inspector, text: str, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        inspector.inspect(text)
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def main() -> None:
    rng = random.Random(1)
    inspector = Inspector(b"bench")
    inspector.inspect("warm up")
    key = "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))
    dirty = prose(1900, rng) + f" key {key} mail ana.silva@globex-corp.com"
    cases = [
        ("clean 2 KB", prose(2048, rng), 5000),
        ("2 KB with findings", dirty, 5000),
        ("clean 100 KB", prose(100_000, rng), 300),
    ]
    print(f"{'prompt':<22}{'p50 µs':>10}{'p99 µs':>10}")
    for name, text, runs in cases:
        samples = timed(inspector, text, runs)
        q = statistics.quantiles(samples, n=100)
        print(f"{name:<22}{q[49]:>10.1f}{q[98]:>10.1f}")


if __name__ == "__main__":
    main()
