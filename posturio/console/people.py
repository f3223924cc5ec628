"""Who did it, as people read it: the console shows a person's e-mail and a key's name
wherever the records keep an actor (`user:<id>`, `key:<prefix>`) or a user id."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.platform.models import ApiKey, Membership, User
from posturio.platform.principal import OPERATOR, SIGNUP
from posturio.platform.repository import scoped

_FIXED = {OPERATOR: "operator (CLI)", SIGNUP: "self-service signup", "anonymous": "anonymous"}


def _user_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def names(
    db: AsyncSession, tenant_id: uuid.UUID, actors: Iterable[str | uuid.UUID | None]
) -> dict[str, str]:
    """A label for each value given (keyed by `str(value)`), in two queries at most.

    `user:<id>` is an actor the server recorded acting in this tenant: named even after
    they left. A bare user id (an assignee, an id inside an event's details) may have
    been written by a caller, so it is named only if that person is a member here —
    another tenant's people are never revealed. Unknown people read "a former member"."""
    given = {str(a) for a in actors if a}
    acted = {a: uid for a in given if a.startswith("user:") and (uid := _user_id(a[5:]))}
    mentioned = {a: uid for a in given if (uid := _user_id(a))}
    prefixes = {a: a.removeprefix("key:") for a in given if a.startswith("key:")}
    out = {a: _FIXED[a] for a in given if a in _FIXED}
    if acted or mentioned:
        members = scoped(Membership, tenant_id).with_only_columns(Membership.user_id)
        rows = await db.execute(
            select(User.id, User.email, User.id.in_(members).label("member")).where(
                User.id.in_({*acted.values(), *mentioned.values()})
            )
        )
        found = {r.id: r for r in rows}
        for a, uid in acted.items():
            out[a] = found[uid].email if uid in found else "a former member"
        for a, uid in mentioned.items():
            row = found.get(uid)
            out[a] = row.email if row is not None and row.member else "a former member"
    if prefixes:
        rows = await db.execute(
            scoped(ApiKey, tenant_id)
            .where(ApiKey.prefix.in_(set(prefixes.values())))
            .with_only_columns(ApiKey.prefix, ApiKey.name)
        )
        labels = {r.prefix: f"key {r.name} ({r.prefix})" for r in rows}
        out |= {a: labels.get(p, f"key {p}") for a, p in prefixes.items()}
    return out
