"""The admin REST API (/api): tenant, members, API keys, audit log. JSON, key-authenticated."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from redis.asyncio import Redis

from posturio.platform import accounts, audit, invitations, keys
from posturio.platform.accounts import MemberView
from posturio.platform.db import after_commit
from posturio.platform.dependencies import (
    Caller,
    Db,
    provide_api_principal,
    provide_tenant_db,
)
from posturio.platform.errors import NotFound, PosturioError
from posturio.platform.keyauth import ALL_KEYS, broadcast_key_change
from posturio.platform.models import ApiKey, Invitation, Role, Tenant
from posturio.platform.schemas import (
    AuditEventOut,
    AuditPage,
    ChainReportOut,
    InvitationCreate,
    InvitationOut,
    KeyCreate,
    KeyCreated,
    KeyLimits,
    KeyOut,
    KeyRevoke,
    MemberCreate,
    MemberOut,
    MemberUpdate,
    TenantOut,
    TenantUpdate,
)


def tenant_out(tenant: Tenant) -> TenantOut:
    return TenantOut(
        str(tenant.id), tenant.name, tenant.slug, tenant.created_at, tenant.limits_fail_open
    )


def member_out(view: MemberView) -> MemberOut:
    m = view.membership
    return MemberOut(
        str(m.id), str(m.user_id), view.email, m.role, m.created_at, list(m.groups), m.active
    )


def invitation_out(invitation: Invitation, accept_url: str | None = None) -> InvitationOut:
    return InvitationOut(
        id=str(invitation.id),
        email=invitation.email,
        role=invitation.role,
        groups=list(invitation.groups),
        invited_by=invitation.invited_by,
        created_at=invitation.created_at,
        expires_at=invitation.expires_at,
        accept_url=accept_url,
    )


def key_out(key: ApiKey) -> KeyOut:
    return KeyOut(
        id=str(key.id),
        name=key.name,
        prefix=key.prefix,
        scopes=list(key.scopes),
        created_by=str(key.created_by) if key.created_by else None,
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
        status=keys.key_status(key),
        allowed_models=key.allowed_models,
        rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit,
        monthly_budget_usd=key.monthly_budget_usd,
        tags=list(key.tags or ()),
    )


class AdminApi(Controller):
    path = "/api"
    tags = ["admin"]
    dependencies = {
        "principal": Provide(provide_api_principal),
        "db": Provide(provide_tenant_db),
    }
    security = [{"apiKey": []}]

    @get("/tenant", summary="The caller's tenant")
    async def tenant(self, db: Db, principal: Caller) -> TenantOut:
        tenant = await db.get(Tenant, principal.tenant_id)
        if tenant is None:
            raise NotFound("tenant not found")
        return tenant_out(tenant)

    @patch("/tenant", summary="Rename the tenant or choose how limits behave without Redis")
    async def update_tenant(
        self, request: Request, db: Db, principal: Caller, data: JSONBody[TenantUpdate]
    ) -> TenantOut:
        tenant = await accounts.update_tenant(
            db, principal, name=data.name, limits_fail_open=data.limits_fail_open
        )
        # Cached keys carry the tenant's fail-open choice: drop them everywhere.
        await key_changed_everywhere(request, db, ALL_KEYS)
        return tenant_out(tenant)

    @get("/members", summary="List members")
    async def list_members(self, db: Db, principal: Caller) -> list[MemberOut]:
        return [member_out(v) for v in await accounts.list_members(db, principal)]

    @post(
        "/invitations",
        summary="Invite a person (new or with an account) to join; the link is shown once",
    )
    async def invite(
        self, request: Request, db: Db, principal: Caller, data: JSONBody[InvitationCreate]
    ) -> InvitationOut:
        new = await invitations.invite(db, principal, data.email, data.role, data.groups)
        return invitation_out(new.invitation, str(request.base_url).rstrip("/") + new.accept_path)

    @get("/invitations", summary="Open invitations")
    async def list_invitations(self, db: Db, principal: Caller) -> list[InvitationOut]:
        return [invitation_out(i) for i in await invitations.pending(db, principal)]

    @delete("/invitations/{invitation_id:str}", summary="Revoke an invitation", status_code=204)
    async def revoke_invitation(
        self, db: Db, principal: Caller, invitation_id: FromPath[str]
    ) -> None:
        await invitations.revoke(db, principal, invitation_id)

    @post("/members", summary="Add a member with a new account (existing accounts: invite)")
    async def add_member(
        self, db: Db, principal: Caller, data: JSONBody[MemberCreate]
    ) -> MemberOut:
        view = await accounts.add_member(db, principal, data.email, data.role, data.password)
        if data.groups:
            view = await accounts.set_groups(db, principal, str(view.membership.id), data.groups)
        return member_out(view)

    @patch("/members/{member_id:str}", summary="Change a member's role and/or groups")
    async def update_member(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        member_id: FromPath[str],
        data: JSONBody[MemberUpdate],
    ) -> MemberOut:
        if data.role is None and data.groups is None:
            raise PosturioError("give a role, groups or both", code="nothing_to_change")
        if data.role is not None:
            await accounts.change_role(db, principal, member_id, data.role)
            # Their keys are worth what the new role is (see keyauth): reload them everywhere.
            await key_changed_everywhere(request, db, ALL_KEYS)
        if data.groups is not None:
            await accounts.set_groups(db, principal, member_id, data.groups)
        return member_out(await accounts.member(db, principal, member_id))

    @delete("/members/{member_id:str}", summary="Remove a member", status_code=204)
    async def remove_member(
        self, request: Request, db: Db, principal: Caller, member_id: FromPath[str]
    ) -> None:
        await accounts.remove_member(db, principal, member_id)
        await key_changed_everywhere(request, db, ALL_KEYS)  # their keys stop at once

    @get("/keys", summary="List API keys")
    async def list_keys(
        self,
        db: Db,
        principal: Caller,
        include_revoked: FromQuery[bool] = True,
    ) -> list[KeyOut]:
        return [
            key_out(k) for k in await keys.list_keys(db, principal, include_revoked=include_revoked)
        ]

    @post("/keys", summary="Create an API key (the secret is returned once)")
    async def create_key(self, db: Db, principal: Caller, data: JSONBody[KeyCreate]) -> KeyCreated:
        created = await keys.create_key(
            db,
            principal,
            name=data.name,
            scopes=[s.value for s in data.scopes],
            expires_in_days=data.expires_in_days,
            limits=data,
        )
        return KeyCreated(key=key_out(created.key), secret=created.plaintext)

    @put("/keys/{key_id:str}/limits", summary="Replace a key's gateway limits (null: unlimited)")
    async def set_key_limits(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        key_id: FromPath[str],
        data: JSONBody[KeyLimits],
    ) -> KeyOut:
        key = await keys.set_limits(db, principal, key_id, data)
        await key_changed_everywhere(request, db, key.prefix)
        return key_out(key)

    @get("/keys/{key_id:str}", summary="One API key")
    async def get_key(self, db: Db, principal: Caller, key_id: FromPath[str]) -> KeyOut:
        return key_out(await keys.get_key(db, principal, key_id))

    @post(
        "/keys/{key_id:str}/revoke",
        summary="Revoke an API key (effective at once)",
        status_code=200,
    )
    async def revoke_key(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        key_id: FromPath[str],
        data: JSONBody[KeyRevoke | None] = None,
    ) -> KeyOut:
        key = await keys.revoke_key(db, principal, key_id, reason=data.reason if data else None)
        await key_changed_everywhere(request, db, key.prefix)
        return key_out(key)

    @get("/audit", summary="Audit events, newest first")
    async def audit_events(
        self,
        db: Db,
        principal: Caller,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        before_seq: Annotated[int | None, QueryParameter(ge=1)] = None,
        action: FromQuery[str | None] = None,
        actor: FromQuery[str | None] = None,
    ) -> AuditPage:
        principal.require(Role.admin)
        events = await audit.list_events(
            db, principal.tenant_id, limit=limit, before_seq=before_seq, action=action, actor=actor
        )
        items = [
            AuditEventOut(
                e.id,
                e.seq,
                e.occurred_at,
                e.actor,
                e.action,
                e.target_type,
                e.target_id,
                e.data,
                e.hash.hex(),
            )
            for e in events
        ]
        more = len(events) == limit and events[-1].seq > 1
        return AuditPage(items, events[-1].seq if more else None)

    @get("/audit/verify", summary="Verify the tenant's audit hash chain")
    async def verify_audit(self, db: Db, principal: Caller) -> ChainReportOut:
        principal.require(Role.admin)
        report = await audit.verify_chain(db, principal.tenant_id)
        return ChainReportOut(**report.as_dict())


async def key_changed_everywhere(request: Request, db: Db, prefix: str) -> None:
    """After commit: drop the key from this process's cache and tell every other process."""
    redis: Redis = request.app.state.redis

    async def _invalidate() -> None:
        request.app.state.key_authenticator.invalidate(prefix)
        await broadcast_key_change(redis, prefix)

    after_commit(db, _invalidate)
