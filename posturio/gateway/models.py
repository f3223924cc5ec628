"""ORM models of the gateway: provider credentials, routes and deployments, usage,
policy versions and policy decisions."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from posturio.platform.db import Base, utcnow


def _uuid() -> uuid.UUID:
    return uuid.uuid4()


class ProviderCredential(Base):
    """An upstream API key, encrypted at rest; never returned by any API."""

    __tablename__ = "provider_credentials"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(40))
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Route(Base):
    """A model alias a caller asks for, served by one or more deployments."""

    __tablename__ = "routes"
    __table_args__ = (UniqueConstraint("tenant_id", "alias"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="chat")  # chat | embeddings
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Deployment(Base):
    """One upstream model behind an alias. Lower priority is tried first; within a
    priority, deployments share traffic by weight."""

    __tablename__ = "deployments"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    route_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("routes.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(200))
    base_url: Mapped[str | None] = mapped_column(Text)
    api_version: Mapped[str | None] = mapped_column(String(40))
    credential_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("provider_credentials.id", ondelete="RESTRICT")
    )
    weight: Mapped[int] = mapped_column(Integer, default=1)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    timeout_s: Mapped[float] = mapped_column(Float, default=60.0)
    max_retries: Mapped[int] = mapped_column(Integer, default=1)
    input_price_per_1k: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=0)
    output_price_per_1k: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class UsageEvent(Base):
    """One gateway request, written in batches by the usage drain (never inline)."""

    __tablename__ = "usage_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    key_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    alias: Mapped[str | None] = mapped_column(String(200))
    deployment: Mapped[str | None] = mapped_column(String(300))
    endpoint: Mapped[str] = mapped_column(String(40))
    origin: Mapped[str] = mapped_column(String(20))
    decision: Mapped[str] = mapped_column(String(20))
    status: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(60))
    attempts: Mapped[int] = mapped_column(Integer)
    stream: Mapped[bool] = mapped_column(Boolean)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    tokens_estimated: Mapped[bool] = mapped_column(Boolean)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(16, 8))
    latency_ms: Mapped[float] = mapped_column(Float)
    overhead_ms: Mapped[float] = mapped_column(Float)
    attempt_log: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    finding_types: Mapped[list[str] | None] = mapped_column(ARRAY(String(40)))


class UsageDaily(Base):
    """Daily rollup per tenant, key and alias (what dashboards and budgets read)."""

    __tablename__ = "usage_daily"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    key_id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    alias: Mapped[str] = mapped_column(String(200), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(18, 8), default=0)
    blocked: Mapped[int] = mapped_column(BigInteger, default=0)
    redacted: Mapped[int] = mapped_column(BigInteger, default=0)
    rerouted: Mapped[int] = mapped_column(BigInteger, default=0)
    flagged: Mapped[int] = mapped_column(BigInteger, default=0)


class Policy(Base):
    """One immutable version of a tenant's policy; the highest version is in force."""

    __tablename__ = "policies"
    __table_args__ = (UniqueConstraint("tenant_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSONB)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PolicyDecision(Base):
    """What the policy did to one request (or its response): the review queue's items.
    Findings carry masked previews and keyed fingerprints, never raw values."""

    __tablename__ = "policy_decisions"
    __table_args__ = (UniqueConstraint("request_id", "direction"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(10))  # input | output
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    key_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    alias: Mapped[str | None] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(20))
    rule_id: Mapped[str | None] = mapped_column(String(200))
    shadow: Mapped[bool] = mapped_column(Boolean)
    policy_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    policy_version: Mapped[int] = mapped_column(Integer)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    snapshot: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="open")
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(UUID)


class Investigation(Base):
    """A case: requests and review items under one title, with notes and saved views."""

    __tablename__ = "investigations"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | in_review | closed
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class InvestigationLink(Base):
    __tablename__ = "investigation_links"
    __table_args__ = (UniqueConstraint("investigation_id", "request_id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    investigation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("investigations.id", ondelete="CASCADE")
    )
    request_id: Mapped[str] = mapped_column(String(64))
    added_by: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class InvestigationNote(Base):
    """The case's timeline: notes people write and events the system adds."""

    __tablename__ = "investigation_notes"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    investigation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("investigations.id", ondelete="CASCADE")
    )
    author: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # note | event
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SavedView(Base):
    """A named filter of the request log kept with a case, to reopen later or hand over."""

    __tablename__ = "saved_views"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    investigation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("investigations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    filters: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UsageFindingsDaily(Base):
    """Findings per category per day (the overview's top finding types)."""

    __tablename__ = "usage_findings_daily"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    category: Mapped[str] = mapped_column(String(40), primary_key=True)
    findings: Mapped[int] = mapped_column(BigInteger, default=0)
