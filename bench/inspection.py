"""Prompt inspection latency: the engine alone and the whole default policy (segments,
inspection, decision, redaction) on clean 2 KB, 2 KB with findings and 100 KB prompts;
and a tenant's catastrophic regex on RE2 against Python's backtracking `re`.

Run: .venv/bin/python -m bench.inspection
(Detection quality and the peers — detect-secrets, presidio — are in bench.detection.)
"""

from __future__ import annotations

import random
import re
import statistics
import string
import time
import uuid
from collections.abc import Callable

from posturio.gateway.inspection.engine import Inspector, compile_re2
from posturio.gateway.inspection.segments import chat_segments
from posturio.gateway.policy.evaluate import CompiledPolicy, Context, Labels, redact
from posturio.gateway.policy.schema import DEFAULT_POLICY

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


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    q = statistics.quantiles(samples, n=100)
    return q[49], q[98]


def catastrophic() -> tuple[float, float, int]:
    """(a+)+$ on 'a'*n + '!': exponential for a backtracking engine, linear for RE2."""
    n = 24
    subject = "a" * n + "!"
    start = time.perf_counter()
    re.search(r"(a+)+$", subject)
    backtracking = time.perf_counter() - start
    pattern = compile_re2("(a+)+$", caseless=False)
    big = "a" * 100_000 + "!"
    start = time.perf_counter()
    for _ in range(100):
        pattern.search(big)
    return backtracking, (time.perf_counter() - start) / 100, n


def main() -> None:
    rng = random.Random(1)
    inspector = Inspector(b"bench")
    policy = CompiledPolicy(None, 0, DEFAULT_POLICY, b"bench")
    ctx = Context(uuid.uuid4(), frozenset(), "bench")
    inspector.inspect("warm up")
    key = "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))
    dirty = prose(1900, rng) + f" key {key} mail ana.silva@globex-corp.com"
    cases = [
        ("clean 2 KB", prose(2048, rng), 5000),
        ("2 KB with findings", dirty, 5000),
        ("clean 100 KB", prose(100_000, rng), 300),
    ]

    def through_policy(text: str) -> Callable[[], object]:
        def run() -> None:  # a fresh payload each time: redaction rewrites it in place
            payload = {
                "messages": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": text},
                ]
            }
            segments = chat_segments(payload)
            verdict = policy.evaluate(segments, ctx)
            if verdict.action not in ("allow", "block"):
                redact(segments, verdict, Labels())

        return run

    print(f"{'prompt':<22}{'engine p50':>12}{'p99 µs':>10}{'policy p50':>12}{'p99 µs':>10}")
    for name, text, runs in cases:
        e50, e99 = timed(lambda text=text: inspector.inspect(text), runs)
        p50, p99 = timed(through_policy(text), runs)
        print(f"{name:<22}{e50:>12.1f}{e99:>10.1f}{p50:>12.1f}{p99:>10.1f}")
    backtracking, re2_time, n = catastrophic()
    print(
        f"\ntenant regex (a+)+$ : Python re on {n + 1} chars {backtracking * 1000:.0f} ms "
        f"(doubles with each extra 'a'); RE2 on 100 KB {re2_time * 1e6:.0f} µs"
    )


if __name__ == "__main__":
    main()
