"""Waiting for what happens in another process (the worker draining usage, a sync, a
server starting): one helper, and a timeout is a test failure naming the last value."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], object],
    *,
    within_s: float = 30.0,
    every_s: float = 0.3,
    what: str = "the condition",
) -> T:
    """Call `probe` until `done(value)` is true; return that value."""
    deadline = time.monotonic() + within_s
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {within_s:g} s; last: {value!r}")
        await asyncio.sleep(every_s)
