"""A tenant's Navigator settings: the chat route that writes grounded answers (changed
by admins, audited; read on every answer, so a change applies to the next question)."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.config import Settings as AppSettings
from posturio.gateway.routing import RouteTable
from posturio.navigator.models import Settings
from posturio.platform import audit
from posturio.platform.db import utcnow
from posturio.platform.errors import PosturioError
from posturio.platform.models import Role
from posturio.platform.principal import Principal


class SettingsIn(msgspec.Struct, forbid_unknown_fields=True):
    # A chat alias of the tenant's routes; null: the operator's default (else extractive).
    answer_model: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


class SettingsOut(msgspec.Struct):
    answer_model: str | None  # the tenant's choice
    default_model: str | None  # the operator's (POSTURIO_NAVIGATOR_ANSWER_MODEL)
    answers: str  # what answers are now: "generative (<alias>)" or "extractive"
    chat_models: list[str]  # the aliases it may name


async def own_choice(session: AsyncSession, tenant_id: uuid.UUID) -> str | None:
    own = await session.get(Settings, tenant_id)
    return own.answer_model if own else None


async def answer_model(
    session: AsyncSession, tenant_id: uuid.UUID, settings: AppSettings
) -> str | None:
    """The alias meant to write this tenant's answers: its own choice, else the operator's."""
    return await own_choice(session, tenant_id) or settings.navigator_answer_model


def describe(
    own: str | None, default: str | None, table: RouteTable, virtual: set[str]
) -> SettingsOut:
    chat = sorted(r.alias for r in table.aliases() if r.kind == "chat" and r.alias not in virtual)
    chosen = own or default
    route = table.get(chosen) if chosen else None
    usable = route is not None and route.kind == "chat" and bool(route.targets)
    answers = f"generative ({chosen})" if usable else "extractive"
    return SettingsOut(own, default, answers, chat)


async def save(
    session: AsyncSession,
    principal: Principal,
    data: SettingsIn,
    table: RouteTable,
    virtual: set[str],
) -> Settings:
    principal.require(Role.admin)
    if data.answer_model is not None:
        route = table.get(data.answer_model)
        if route is None or route.kind != "chat" or data.answer_model in virtual:
            raise PosturioError(
                f"'{data.answer_model}' is not one of this tenant's chat models",
                code="invalid_answer_model",
            )
    current = await session.get(Settings, principal.tenant_id)
    before = current.answer_model if current else None
    if current is None:
        current = Settings(tenant_id=principal.tenant_id, updated_by=principal.actor)
        session.add(current)
    current.answer_model = data.answer_model
    current.updated_by = principal.actor
    current.updated_at = utcnow()
    await session.flush()
    await audit.record(
        session,
        principal.tenant_id,
        actor=principal.actor,
        action="navigator.settings",
        target_type="navigator_settings",
        target_id=str(principal.tenant_id),
        data={"answer_model": {"from": before, "to": data.answer_model}},
    )
    return current
