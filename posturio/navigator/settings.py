"""A tenant's Navigator settings: the chat route that writes grounded answers (changed
by admins, audited; read on every answer, so a change applies to the next question)."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.config import Settings as AppSettings
from posturio.gateway.pipeline import Gateway
from posturio.navigator.models import Settings
from posturio.platform import audit
from posturio.platform.db import utcnow
from posturio.platform.errors import PosturioError
from posturio.platform.models import Role
from posturio.platform.principal import Principal
from posturio.platform.repository import scoped


class SettingsIn(msgspec.Struct, forbid_unknown_fields=True):
    # A chat alias of the tenant's routes; null: the operator's default (else extractive).
    answer_model: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


class SettingsOut(msgspec.Struct):
    answer_model: str | None  # the tenant's choice
    default_model: str | None  # the operator's (POSTURIO_NAVIGATOR_ANSWER_MODEL)
    answers: str  # what answers are now: "generative (<alias>)" or "extractive"
    chat_models: list[str]  # the aliases it may name


async def _row(session: AsyncSession, tenant_id: uuid.UUID) -> Settings | None:
    return (await session.scalars(scoped(Settings, tenant_id))).first()


async def own_choice(session: AsyncSession, tenant_id: uuid.UUID) -> str | None:
    own = await _row(session, tenant_id)
    return own.answer_model if own else None


async def answer_model(
    session: AsyncSession, tenant_id: uuid.UUID, settings: AppSettings
) -> str | None:
    """The alias meant to write this tenant's answers: its own choice, else the operator's."""
    return await own_choice(session, tenant_id) or settings.navigator_answer_model


async def current(
    session: AsyncSession, tenant_id: uuid.UUID, settings: AppSettings, gateway: Gateway
) -> SettingsOut:
    """The tenant's choice, the operator's default, what answers are now and the choices."""
    own = await own_choice(session, tenant_id)
    default = settings.navigator_answer_model
    table = await gateway.routes.get(tenant_id)
    virtual = set(gateway.virtual_models)
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
    gateway: Gateway,
) -> Settings:
    principal.require(Role.admin)
    if data.answer_model is not None:
        route = (await gateway.routes.get(principal.tenant_id)).get(data.answer_model)
        if route is None or route.kind != "chat" or data.answer_model in gateway.virtual_models:
            raise PosturioError(
                f"'{data.answer_model}' is not one of this tenant's chat models",
                code="invalid_answer_model",
            )
    row = await _row(session, principal.tenant_id)
    before = row.answer_model if row else None
    if row is None:
        row = Settings(tenant_id=principal.tenant_id, updated_by=principal.actor)
        session.add(row)
    row.answer_model = data.answer_model
    row.updated_by = principal.actor
    row.updated_at = utcnow()
    await session.flush()
    await audit.by(
        session,
        principal,
        action="navigator.settings",
        target_type="navigator_settings",
        target_id=str(principal.tenant_id),
        data={"answer_model": {"from": before, "to": data.answer_model}},
    )
    return row
