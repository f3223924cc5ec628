"""One session per request: commit after the handler, rollback on error, and a commit
that fails is an error (never a silent success), with after-commit work skipped."""

from __future__ import annotations

import uuid

import httpx
import pytest
from litestar import Litestar, post
from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from posturio.platform.db import after_commit
from posturio.platform.dependencies import Db, provide_db
from posturio.platform.errors import EXCEPTION_HANDLERS, Conflict

TEMP = "CREATE TEMP TABLE IF NOT EXISTS uow (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)"


async def _count(sessionmaker, marker: str) -> int:
    async with sessionmaker() as s:
        return (
            await s.execute(text("SELECT count(*) FROM users WHERE email = :e"), {"e": marker})
        ).scalar_one()


async def test_commit_after_handler(sessionmaker):
    state = State({"sessionmaker": sessionmaker})
    email = f"{uuid.uuid4().hex}@example.com"
    ran: list[str] = []
    gen = provide_db(state)
    session = await gen.__anext__()
    await session.execute(
        text("INSERT INTO users (id, email, created_at) VALUES (:i, :e, now())"),
        {"i": uuid.uuid4(), "e": email},
    )

    async def note() -> None:
        ran.append("after")

    after_commit(session, note)
    with pytest.raises(StopAsyncIteration):
        await gen.__anext__()
    assert ran == ["after"] and await _count(sessionmaker, email) == 1


async def test_rollback_when_the_handler_fails(sessionmaker):
    state = State({"sessionmaker": sessionmaker})
    email = f"{uuid.uuid4().hex}@example.com"
    gen = provide_db(state)
    session = await gen.__anext__()
    await session.execute(
        text("INSERT INTO users (id, email, created_at) VALUES (:i, :e, now())"),
        {"i": uuid.uuid4(), "e": email},
    )
    with pytest.raises(ValueError, match="handler failed"):
        await gen.athrow(ValueError("handler failed"))
    assert await _count(sessionmaker, email) == 0


async def test_failed_commit_is_an_error(sessionmaker):
    state = State({"sessionmaker": sessionmaker})
    ran: list[str] = []
    gen = provide_db(state)
    session = await gen.__anext__()
    await session.execute(text(TEMP))
    # Deferred: both inserts succeed now, the commit itself fails.
    await session.execute(text("INSERT INTO uow VALUES (1), (1)"))

    async def note() -> None:
        ran.append("after")

    after_commit(session, note)
    with pytest.raises(IntegrityError):
        await gen.__anext__()
    assert ran == []


async def test_litestar_rolls_back_a_request_whose_handler_raises(sessionmaker):
    email = f"{uuid.uuid4().hex}@example.com"

    @post("/write-then-fail", dependencies={"db": Provide(provide_db)})
    async def write_then_fail(db: Db) -> None:
        await db.execute(
            text("INSERT INTO users (id, email, created_at) VALUES (:i, :e, now())"),
            {"i": uuid.uuid4(), "e": email},
        )
        raise Conflict("changed my mind")

    app = Litestar([write_then_fail], exception_handlers=EXCEPTION_HANDLERS)
    app.state.sessionmaker = sessionmaker
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/write-then-fail")
    assert r.status_code == 409
    assert await _count(sessionmaker, email) == 0
