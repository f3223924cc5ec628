"""SCIM 2.0 provisioning (RFC 7643/7644) from the company's identity provider.

A SCIM user is the tenant's membership of an account (its `id` is the membership's id,
its `userName` the account's address). Accounts are global: provisioning an address that
has no account creates it without a password (the person signs in with SSO); an address
whose account already exists elsewhere is refused with 409, as SSO refuses it — an
admin invites it once, and after the person accepts, SCIM manages that membership.

Deactivating a user (`active: false`) or deleting it revokes the keys they created in
this tenant and ends their console sessions here before the response; a deactivated
membership stays (reactivation restores it) but cannot sign in. SCIM groups are the
person's IdP groups: through the tenant's SSO mapping they set the role and Navigator
groups exactly as a sign-in would; without SSO, a group's name is the Navigator group.

Clients authenticate with one bearer token per tenant, made by an admin through
`POST /api/scim/token` (shown once, only its hash kept). Errors answer in SCIM's shape.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, QueryParameter
from redis.exceptions import RedisError
from sqlalchemy import Select, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.platform import accounts, audit, keys, sso
from posturio.platform.api import key_changed_everywhere
from posturio.platform.db import after_commit, utcnow
from posturio.platform.dependencies import (
    Caller,
    Db,
    provide_api_principal,
    provide_tenant_db,
)
from posturio.platform.errors import NotFound, PosturioError
from posturio.platform.inputs import json_depth_exceeds
from posturio.platform.keyauth import ALL_KEYS, bearer_or_key
from posturio.platform.models import (
    Membership,
    Role,
    ScimGroup,
    ScimGroupMember,
    ScimToken,
    SsoConfig,
    User,
)
from posturio.platform.principal import Principal, require_standard_plan
from posturio.platform.repository import scoped, scoped_delete
from posturio.platform.security import hash_secret
from posturio.platform.sessions import ConsoleSessionStore

log = structlog.get_logger("posturio.scim")

BASE_PATH = "/scim/v2"
MEDIA_TYPE = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SPC = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
TOKEN_MARK = "pscim"  # noqa: S105 - the tokens' visible mark, not a secret
MAX_RESULTS = 200
MAX_TEXT = 200
MAX_EMAILS = 10
MAX_OPERATIONS = 100
MAX_MEMBERS_PER_CHANGE = 1000


class ScimError(Exception):
    """An error in SCIM's shape: `status` and, where RFC 7644 names one, `scimType`."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type


def scim_response(
    body: dict[str, Any] | None, status: int = 200, headers: dict[str, str] | None = None
) -> Response[bytes]:
    content = msgspec.json.encode(body) if body is not None else b""
    return Response(content, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _error(status: int, detail: str, scim_type: str | None = None) -> Response[bytes]:
    body: dict[str, Any] = {"schemas": [ERROR], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    headers = {"www-authenticate": 'Bearer realm="scim"'} if status == 401 else None
    return scim_response(body, status, headers)


def _on_scim(request: Request[Any, Any, Any], exc: ScimError) -> Response[bytes]:
    return _error(exc.status, exc.detail, exc.scim_type)


def _on_posturio(request: Request[Any, Any, Any], exc: PosturioError) -> Response[bytes]:
    scim_type = "invalidValue" if exc.status_code == 400 else None
    return _error(exc.status_code, exc.message, scim_type)


def _on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    scim_type = "invalidSyntax" if isinstance(exc, ValidationException) else None
    return _error(exc.status_code, str(exc.detail), scim_type)


def _on_conflict(request: Request[Any, Any, Any], exc: IntegrityError) -> Response[bytes]:
    return _error(409, "the change conflicts with an existing resource", "uniqueness")


EXCEPTION_HANDLERS: dict[type[Exception] | int, Callable[..., Response[bytes]]] = {
    ScimError: _on_scim,
    PosturioError: _on_posturio,
    HTTPException: _on_http,
    IntegrityError: _on_conflict,
}


# --- the token ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewToken:
    row: ScimToken
    token: str  # shown once, never stored


async def current_token(session: AsyncSession, tenant_id: uuid.UUID) -> ScimToken | None:
    """The tenant's SCIM token row (one per tenant, keyed by it), if any."""
    return await session.get(ScimToken, tenant_id)


async def issue_token(session: AsyncSession, principal: Principal) -> NewToken:
    """A new token for the tenant; an existing one stops working (rotation)."""
    principal.require(Role.admin)
    await require_standard_plan(session, principal, "SCIM provisioning")
    prefix = secrets.token_hex(4)
    token = f"{TOKEN_MARK}_{prefix}_{secrets.token_urlsafe(32)}"
    row = await current_token(session, principal.tenant_id)
    rotated = row is not None
    if row is None:
        row = ScimToken(tenant_id=principal.tenant_id)
        session.add(row)
    old_prefix = row.prefix if rotated else None
    row.prefix, row.token_hash = prefix, hash_secret(token)
    row.created_by, row.created_at = principal.actor, utcnow()
    await session.flush()
    await audit.by(
        session,
        principal,
        action="scim.token_rotate" if rotated else "scim.token_create",
        target_type="tenant",
        target_id=principal.tenant_id,
        data={"prefix": prefix, "replaced": old_prefix},
    )
    return NewToken(row, token)


async def remove_token(session: AsyncSession, principal: Principal) -> None:
    principal.require(Role.admin)
    row = await current_token(session, principal.tenant_id)
    if row is None:
        raise NotFound("SCIM provisioning has no token in this tenant")
    await session.delete(row)
    await audit.by(
        session,
        principal,
        action="scim.token_remove",
        target_type="tenant",
        target_id=principal.tenant_id,
        data={"prefix": row.prefix},
    )


async def provide_scim_principal(request: Request[Any, Any, Any]) -> Principal:
    """The tenant whose token the request carries (one lookup by hash; a rotated or
    removed token stops at once)."""
    token = bearer_or_key(request.headers.get("authorization"), None)
    if not token or not token.startswith(f"{TOKEN_MARK}_") or len(token) > 200:
        raise ScimError(401, "a SCIM bearer token is required (POST /api/scim/token)")
    async with request.app.state.sessionmaker() as session:
        row = (
            await session.execute(
                text("SELECT tenant_id, prefix FROM posturio_scim_token(:h)"),
                {"h": hash_secret(token)},
            )
        ).first()
    if row is None:
        raise ScimError(401, "this SCIM token is not valid (rotated or removed?)")
    return Principal(tenant_id=row.tenant_id, role=Role.admin, actor=f"scim:{row.prefix}")


# --- request parsing ------------------------------------------------------------------


async def _body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    raw = await request.body()
    if json_depth_exceeds(raw):
        raise ScimError(400, "the JSON is nested too deeply", "invalidSyntax")
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise ScimError(400, "the body is not JSON", "invalidSyntax") from None
    if not isinstance(body, dict):
        raise ScimError(400, "the body must be a JSON object", "invalidSyntax")
    return body


def _text(value: Any, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise ScimError(
            400, f"{what} must be a string of at most {limit} characters", "invalidValue"
        )
    return value


def _bool(value: Any, what: str) -> bool:
    """A boolean, or Entra's "True"/"False" strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ScimError(400, f"{what} must be true or false", "invalidValue")


def _int(value: str | None, what: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ScimError(400, f"{what} must be an integer", "invalidValue") from None


@dataclass(frozen=True, slots=True)
class Page:
    start: int  # 1-based, as SCIM counts
    count: int


def page_of(start_index: str | None, count: str | None) -> Page:
    start = max(_int(start_index, "startIndex", 1), 1)
    size = min(max(_int(count, "count", MAX_RESULTS), 0), MAX_RESULTS)
    return Page(start, size)


_FILTER = re.compile(r'^\s*([A-Za-z][\w.]*)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)


def parse_filter(expression: str | None, allowed: tuple[str, ...]) -> tuple[str, str] | None:
    """`attribute eq "value"` (the form provisioning clients send), attribute names
    compared case-insensitively; anything else is SCIM's invalidFilter."""
    if not expression:
        return None
    match = _FILTER.match(expression[:1000])
    names = {a.lower(): a for a in allowed}
    if match is None or match.group(1).lower() not in names:
        raise ScimError(
            400,
            f'filter must be `<attribute> eq "<value>"` with attribute one of {", ".join(allowed)}',
            "invalidFilter",
        )
    try:
        value = json.loads(f'"{match.group(2)}"')
    except ValueError:
        value = "\x00"
    if "\x00" in value:
        raise ScimError(400, "the filter's value is not a valid string", "invalidFilter")
    return names[match.group(1).lower()], value


def list_response(resources: list[dict[str, Any]], total: int, page: Page) -> dict[str, Any]:
    return {
        "schemas": [LIST],
        "totalResults": total,
        "startIndex": page.start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def _iso(at: datetime) -> str:
    return at.isoformat()


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


# --- users: the document ----------------------------------------------------------------

_NAME = ("formatted", "familyName", "givenName", "middleName", "honorificPrefix")
NAME_PARTS = {p.lower(): p for p in (*_NAME, "honorificSuffix")}
EMAIL_PARTS = {p.lower(): p for p in ("value", "type", "primary", "display")}
USER_ATTRS = {a.lower(): a for a in ("userName", "active", "externalId", "displayName")}
_PATH = re.compile(r"^([A-Za-z][\w-]*)(?:\[([^\]]*)\])?(?:\.([A-Za-z][\w-]*))?$")
_VALUE_FILTER = re.compile(
    r'^\s*([A-Za-z]\w*)\s+eq\s+("(?:[^"\\]|\\.)*"|true|false)\s*$', re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class UserIn:
    user_name: str
    active: bool
    profile: dict[str, Any]  # externalId, displayName, name, emails: as SCIM spells them


def _email_entry(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScimError(400, "each of emails must be an object", "invalidValue")
    entry: dict[str, Any] = {}
    for key, item in value.items():
        part = EMAIL_PARTS.get(str(key).lower())
        if part == "primary":
            entry[part] = _bool(item, "emails.primary")
        elif part is not None:
            entry[part] = _text(item, f"emails.{part}", 320)
    if "value" not in entry:
        raise ScimError(400, "each of emails needs a value", "invalidValue")
    return entry


def _name(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ScimError(400, "name must be an object", "invalidValue")
    parts = {NAME_PARTS.get(str(k).lower()): v for k, v in value.items()}
    return {p: _text(v, f"name.{p}") for p, v in parts.items() if p is not None and v is not None}


def user_in(doc: dict[str, Any]) -> UserIn:
    """The attributes Posturio keeps, checked; unknown attributes and extensions (title,
    phoneNumbers, the enterprise schema, …) are ignored, as clients send many."""
    fields = {str(k).lower(): v for k, v in doc.items()}
    user_name = fields.get("username")
    if not isinstance(user_name, str) or not user_name.strip():
        raise ScimError(400, "userName (the person's e-mail address) is required", "invalidValue")
    profile: dict[str, Any] = {}
    for attr in ("externalId", "displayName"):
        if fields.get(attr.lower()) is not None:
            profile[attr] = _text(fields[attr.lower()], attr)
    if fields.get("name") is not None:
        profile["name"] = _name(fields["name"])
    emails = fields.get("emails")
    if emails is not None:
        if not isinstance(emails, list) or len(emails) > MAX_EMAILS:
            raise ScimError(400, f"emails must be a list of at most {MAX_EMAILS}", "invalidValue")
        profile["emails"] = [_email_entry(e) for e in emails]
    active = fields.get("active")
    return UserIn(
        user_name=accounts.normalise_email(_text(user_name, "userName", 320)),
        active=True if active is None else _bool(active, "active"),
        profile=profile,
    )


def user_document(membership: Membership, email: str) -> dict[str, Any]:
    """The user as a PATCH sees it before its operations apply."""
    return {"userName": email, "active": membership.active, **(membership.scim or {})}


@dataclass(frozen=True, slots=True)
class Operation:
    op: str  # add | replace | remove
    path: str | None
    value: Any


def operations(body: dict[str, Any]) -> list[Operation]:
    """PatchOp's operations; `op` case-insensitive (Entra writes "Replace")."""
    ops = next((v for k, v in body.items() if str(k).lower() == "operations"), None)
    if not isinstance(ops, list) or not ops or len(ops) > MAX_OPERATIONS:
        raise ScimError(400, f"Operations must list 1-{MAX_OPERATIONS} operations", "invalidSyntax")
    parsed = []
    for item in ops:
        if not isinstance(item, dict):
            raise ScimError(400, "each operation must be an object", "invalidSyntax")
        fields = {str(k).lower(): v for k, v in item.items()}
        op = fields.get("op")
        if not isinstance(op, str) or op.lower() not in ("add", "replace", "remove"):
            raise ScimError(400, "op must be add, replace or remove", "invalidSyntax")
        path = fields.get("path")
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise ScimError(400, "path must be a non-empty string", "invalidPath")
        parsed.append(Operation(op.lower(), path.strip() if path else None, fields.get("value")))
    return parsed


def _strip_schema(path: str, schema: str) -> str | None:
    """The attribute path without the core schema's URN; None for an extension's."""
    if path.lower().startswith(schema.lower() + ":"):
        return path[len(schema) + 1 :]
    return None if path.lower().startswith("urn:") else path


def _split_path(path: str) -> tuple[str, str | None, str | None]:
    match = _PATH.match(path)
    if match is None:
        raise ScimError(400, f"cannot read the path {path[:100]!r}", "invalidPath")
    return match.group(1).lower(), match.group(2), match.group(3)


def _value_filter(expression: str) -> tuple[str, Any]:
    match = _VALUE_FILTER.match(expression)
    if match is None:
        raise ScimError(400, f"cannot read the filter [{expression[:100]}]", "invalidPath")
    raw = match.group(2)
    value = json.loads(raw) if raw.startswith('"') else raw.lower() == "true"
    return match.group(1).lower(), value


def _matches(entry: dict[str, Any], attr: str, value: Any) -> bool:
    found = next((v for k, v in entry.items() if k.lower() == attr), None)
    if isinstance(value, bool):
        return found is not None and _bool(found, attr) == value
    return isinstance(found, str) and found.lower() == str(value).lower()


def apply_user_operation(doc: dict[str, Any], operation: Operation) -> None:
    if operation.path is None:
        if operation.op == "remove":
            raise ScimError(400, "remove needs a path", "noTarget")
        if not isinstance(operation.value, dict):
            raise ScimError(400, "an operation without a path needs an object", "invalidValue")
        # Keys may be paths themselves: Entra sends {"name.givenName": "Ada"}.
        for key, value in operation.value.items():
            apply_user_operation(doc, Operation(operation.op, str(key), value))
        return
    path = _strip_schema(operation.path, USER)
    if path is None:
        return  # an extension's attribute: not kept
    attr, value_filter, sub = _split_path(path)
    if attr == "emails":
        _apply_emails(doc, operation, value_filter, sub)
    elif attr == "name" and value_filter is None:
        _apply_name(doc, operation, sub)
    elif attr in USER_ATTRS and value_filter is None and sub is None:
        name = USER_ATTRS[attr]
        if operation.op == "remove":
            if name in ("userName", "active"):
                raise ScimError(400, f"{name} cannot be removed", "mutability")
            doc.pop(name, None)
        else:
            doc[name] = operation.value
    elif value_filter is not None or sub is not None:
        if attr in USER_ATTRS or attr == "name":
            raise ScimError(400, f"{operation.path[:100]} is not a valid path", "invalidPath")


def _apply_name(doc: dict[str, Any], operation: Operation, sub: str | None) -> None:
    name = dict(doc.get("name") or {})
    if sub is None:
        if operation.op == "remove":
            doc.pop("name", None)
            return
        name.update(_name(operation.value))  # sub-attributes not given are kept
    else:
        part = NAME_PARTS.get(sub.lower())
        if part is None:
            return
        if operation.op == "remove":
            name.pop(part, None)
        else:
            name[part] = operation.value
    doc["name"] = name


def _apply_emails(
    doc: dict[str, Any], operation: Operation, value_filter: str | None, sub: str | None
) -> None:
    emails: list[dict[str, Any]] = [dict(e) for e in doc.get("emails") or []]
    if value_filter is None:
        if sub is not None:
            raise ScimError(400, "emails.<part> needs a filter: emails[type eq ...]", "invalidPath")
        if operation.op == "remove":
            doc.pop("emails", None)
            return
        given = operation.value if isinstance(operation.value, list) else [operation.value]
        doc["emails"] = [*emails, *given] if operation.op == "add" else given
        return
    attr, wanted = _value_filter(value_filter)
    chosen = [e for e in emails if _matches(e, attr, wanted)]
    if operation.op == "remove":
        if sub is None:
            doc["emails"] = [e for e in emails if not _matches(e, attr, wanted)]
        else:
            for entry in chosen:
                entry.pop(EMAIL_PARTS.get(sub.lower(), sub), None)
            doc["emails"] = emails
        return
    if not chosen:  # `emails[type eq "work"].value` on a user without one: add it
        chosen = [{EMAIL_PARTS.get(attr, attr): wanted}]
        emails.append(chosen[0])
    for entry in chosen:
        if sub is None:
            entry.update(operation.value if isinstance(operation.value, dict) else {})
        else:
            entry[EMAIL_PARTS.get(sub.lower(), sub)] = operation.value
    doc["emails"] = emails


# --- users: the service -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScimUser:
    membership: Membership
    email: str


def user_resource(user: ScimUser, base: str) -> dict[str, Any]:
    m = user.membership
    profile = dict(m.scim or {})
    modified = profile.pop("lastModified", None) or _iso(m.created_at)
    return {
        "schemas": [USER],
        "id": str(m.id),
        "userName": user.email,
        **profile,
        "emails": profile.get("emails") or [{"value": user.email, "type": "work", "primary": True}],
        "active": m.active,
        "roles": [{"value": m.role, "primary": True}],
        "meta": {
            "resourceType": "User",
            "created": _iso(m.created_at),
            "lastModified": modified,
            "location": f"{base}/Users/{m.id}",
        },
    }


def _users(tenant_id: uuid.UUID) -> Select[Membership, str]:
    return (
        scoped(Membership, tenant_id)
        .add_columns(User.email)
        .join(User, User.id == Membership.user_id)
    )


async def find_user(session: AsyncSession, tenant_id: uuid.UUID, user_id: str) -> ScimUser:
    membership_id = _uuid(user_id)
    row = None
    if membership_id is not None:
        row = (
            await session.execute(_users(tenant_id).where(Membership.id == membership_id))
        ).first()
    if row is None:
        raise ScimError(404, f"no user {user_id[:100]}")
    return ScimUser(row[0], row[1])


async def list_users(
    session: AsyncSession, tenant_id: uuid.UUID, where: tuple[str, str] | None, page: Page
) -> tuple[list[ScimUser], int]:
    stmt = _users(tenant_id)
    if where is not None:
        attr, value = where
        if attr == "userName":
            stmt = stmt.where(func.lower(User.email) == value.strip().lower())
        elif attr == "externalId":
            stmt = stmt.where(Membership.scim["externalId"].astext == value)
        else:
            stmt = stmt.where(Membership.id == (_uuid(value) or uuid.UUID(int=0)))
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    if page.count == 0:
        return [], total
    rows = await session.execute(
        stmt.order_by(Membership.created_at, Membership.id).offset(page.start - 1).limit(page.count)
    )
    return [ScimUser(m, email) for m, email in rows.all()], total


def _profile(data: UserIn) -> dict[str, Any]:
    return {**data.profile, "lastModified": _iso(utcnow())}


async def create_user(session: AsyncSession, principal: Principal, data: UserIn) -> ScimUser:
    """A membership for the address (and the account, when there is none)."""
    tenant_id = principal.tenant_id
    user = await accounts.user_by_email(session, data.user_name)
    if user is not None:
        existing = (
            await session.execute(_users(tenant_id).where(Membership.user_id == user.id))
        ).first()
        if existing is not None:
            raise ScimError(409, f"{user.email} is already a user here", "uniqueness")
        if user.password_hash or await accounts.memberships_of(session, user.id, inactive=True):
            # Accounts are global: a tenant never attaches one it does not own.
            raise ScimError(
                409,
                f"{user.email} already has a Posturio account: an admin of this tenant invites "
                "it once (Members → Invite); once accepted, provisioning manages it",
                "uniqueness",
            )
    else:
        user = await accounts.ensure_user(session, data.user_name, None)
    config = await sso.get_config(session, tenant_id)
    role = (sso.mapped_role(config, []) if config else None) or Role.member
    membership = Membership(
        tenant_id=tenant_id,
        user_id=user.id,
        role=role.value,
        groups=[],
        active=data.active,
        scim=_profile(data),
    )
    session.add(membership)
    await session.flush()
    await accounts.close_invitations(session, tenant_id, user.email)
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="member.scim_create",
        target_type="membership",
        target_id=membership.id,
        data={"email": user.email, "role": role.value, "active": data.active},
    )
    return ScimUser(membership, user.email)


@dataclass(slots=True)
class Effects:
    """What must happen once the change commits, still within the request."""

    sessions_to_end: list[uuid.UUID]  # user ids whose sessions in this tenant end
    keys_changed: bool = False


async def replace_user(
    session: AsyncSession, principal: Principal, user: ScimUser, data: UserIn, effects: Effects
) -> ScimUser:
    if data.user_name.lower() != user.email.lower():
        raise ScimError(
            400,
            f"userName is the account's address ({user.email}) and cannot change here: "
            "deprovision this user and provision the new address",
            "mutability",
        )
    m = user.membership
    m.scim = _profile(data)
    if data.active != m.active:
        await _set_active(session, principal, user, data.active, effects)
    return user


async def _require_other_owner(session: AsyncSession, principal: Principal, m: Membership) -> None:
    if m.role == Role.owner.value and m.active:
        if await accounts.owner_count(session, principal.tenant_id) <= 1:
            raise ScimError(409, "a tenant needs at least one active owner")


async def _set_active(
    session: AsyncSession, principal: Principal, user: ScimUser, active: bool, effects: Effects
) -> None:
    m = user.membership
    revoked: list[str] = []
    if not active:
        await _require_other_owner(session, principal, m)
        revoked = await keys.revoke_keys_of(session, principal, m.user_id, "scim: deactivated")
        effects.sessions_to_end.append(m.user_id)
        effects.keys_changed = True
    m.active = active
    await audit.by(
        session,
        principal,
        action="member.scim_activate" if active else "member.scim_deactivate",
        target_type="membership",
        target_id=m.id,
        data={"email": user.email, "revoked_keys": revoked},
    )


async def delete_user(
    session: AsyncSession, principal: Principal, user: ScimUser, effects: Effects
) -> None:
    m = user.membership
    await _require_other_owner(session, principal, m)
    revoked = await keys.revoke_keys_of(session, principal, m.user_id, "scim: deleted")
    await session.delete(m)
    effects.sessions_to_end.append(m.user_id)
    effects.keys_changed = True
    await audit.by(
        session,
        principal,
        action="member.scim_delete",
        target_type="membership",
        target_id=m.id,
        data={"email": user.email, "revoked_keys": revoked},
    )


# --- groups -----------------------------------------------------------------------------


def group_resource(
    group: ScimGroup, members: list[tuple[uuid.UUID, str]] | None, base: str
) -> dict[str, Any]:
    resource: dict[str, Any] = {"schemas": [GROUP], "id": str(group.id)}
    resource["displayName"] = group.display_name
    if group.external_id:
        resource["externalId"] = group.external_id
    if members is not None:
        resource["members"] = [
            {"value": str(mid), "display": email, "$ref": f"{base}/Users/{mid}"}
            for mid, email in members
        ]
    resource["meta"] = {
        "resourceType": "Group",
        "created": _iso(group.created_at),
        "lastModified": _iso(group.updated_at),
        "location": f"{base}/Groups/{group.id}",
    }
    return resource


async def find_group(session: AsyncSession, tenant_id: uuid.UUID, group_id: str) -> ScimGroup:
    gid = _uuid(group_id)
    group = None
    if gid is not None:
        group = (
            await session.scalars(scoped(ScimGroup, tenant_id).where(ScimGroup.id == gid))
        ).first()
    if group is None:
        raise ScimError(404, f"no group {group_id[:100]}")
    return group


async def members_of(
    session: AsyncSession, tenant_id: uuid.UUID, group_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[uuid.UUID, str]]]:
    rows = await session.execute(
        scoped(ScimGroupMember, tenant_id)
        .with_only_columns(ScimGroupMember.group_id, Membership.id, User.email)
        .join(Membership, Membership.id == ScimGroupMember.membership_id)
        .join(User, User.id == Membership.user_id)
        .where(ScimGroupMember.group_id.in_(group_ids))
        .order_by(User.email)
    )
    found: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = {g: [] for g in group_ids}
    for group_id, membership_id, email in rows.all():
        found[group_id].append((membership_id, email))
    return found


async def list_groups(
    session: AsyncSession, tenant_id: uuid.UUID, where: tuple[str, str] | None, page: Page
) -> tuple[list[ScimGroup], int]:
    stmt = scoped(ScimGroup, tenant_id)
    if where is not None:
        attr, value = where
        if attr == "displayName":
            stmt = stmt.where(func.lower(ScimGroup.display_name) == value.lower())
        elif attr == "externalId":
            stmt = stmt.where(ScimGroup.external_id == value)
        else:
            stmt = stmt.where(ScimGroup.id == (_uuid(value) or uuid.UUID(int=0)))
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    if page.count == 0:
        return [], total
    groups = await session.scalars(
        stmt.order_by(ScimGroup.created_at, ScimGroup.id).offset(page.start - 1).limit(page.count)
    )
    return list(groups.all()), total


def _member_ids(value: Any) -> list[uuid.UUID]:
    """`[{"value": "<user id>"}, …]` (a single object is accepted too)."""
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_MEMBERS_PER_CHANGE:
        raise ScimError(400, f"at most {MAX_MEMBERS_PER_CHANGE} members at once", "tooMany")
    ids = []
    for item in items:
        raw = item.get("value") if isinstance(item, dict) else None
        member_id = _uuid(raw) if isinstance(raw, str) else None
        if member_id is None:
            raise ScimError(400, 'members must be [{"value": "<user id>"}]', "invalidValue")
        ids.append(member_id)
    return ids


@dataclass(slots=True)
class GroupChange:
    """A group's new state, built from the request before anything is written."""

    display_name: str
    external_id: str | None
    members: set[uuid.UUID]


def group_in(doc: dict[str, Any]) -> GroupChange:
    fields = {str(k).lower(): v for k, v in doc.items()}
    name = fields.get("displayname")
    if not isinstance(name, str) or not name.strip():
        raise ScimError(400, "displayName is required", "invalidValue")
    external = fields.get("externalid")
    members = fields.get("members")
    return GroupChange(
        display_name=_text(name.strip(), "displayName"),
        external_id=_text(external, "externalId") if external is not None else None,
        members=set(_member_ids(members)) if members else set(),
    )


_MEMBER_PATH = re.compile(r'^members\[\s*value\s+eq\s+"([^"]*)"\s*\]$', re.IGNORECASE)


def apply_group_operation(change: GroupChange, operation: Operation) -> None:
    path = _strip_schema(operation.path, GROUP) if operation.path else None
    if operation.path is not None and path is None:
        return  # an extension's attribute
    if path is None:
        if operation.op == "remove" or not isinstance(operation.value, dict):
            raise ScimError(400, "an operation without a path needs an object", "invalidValue")
        for key, value in operation.value.items():
            if str(key).lower() != "id":  # Okta repeats the id in a rename
                apply_group_operation(change, Operation(operation.op, str(key), value))
        return
    one = _MEMBER_PATH.match(path)
    attr = path.lower()
    if one is not None and operation.op == "remove":
        change.members.discard(_uuid(one.group(1)) or uuid.UUID(int=0))
    elif attr == "members":
        if operation.op == "remove" and operation.value is None:
            change.members.clear()
        elif operation.op == "remove":
            change.members.difference_update(_member_ids(operation.value))
        elif operation.op == "add":
            change.members.update(_member_ids(operation.value))
        else:
            change.members = set(_member_ids(operation.value or []))
    elif attr == "displayname":
        if operation.op == "remove":
            raise ScimError(400, "displayName cannot be removed", "mutability")
        change.display_name = _text(operation.value, "displayName").strip()
        if not change.display_name:
            raise ScimError(400, "displayName cannot be empty", "invalidValue")
    elif attr == "externalid":
        change.external_id = (
            None if operation.op == "remove" else _text(operation.value, "externalId")
        )
    else:
        raise ScimError(400, f"{path[:100]} is not a group attribute", "invalidPath")


async def _check_members(
    session: AsyncSession, tenant_id: uuid.UUID, members: set[uuid.UUID]
) -> None:
    if not members:
        return
    known = set(
        (
            await session.scalars(
                scoped(Membership, tenant_id)
                .with_only_columns(Membership.id)
                .where(Membership.id.in_(members))
            )
        ).all()
    )
    missing = members - known
    if missing:
        raise ScimError(400, f"no user {sorted(map(str, missing))[0]}", "invalidValue")


async def save_group(
    session: AsyncSession,
    principal: Principal,
    group: ScimGroup | None,
    change: GroupChange,
    effects: Effects,
) -> ScimGroup:
    """Create or update a group; the members who joined or left get their groups (and,
    through the SSO mapping, their role) again."""
    tenant_id = principal.tenant_id
    await _check_members(session, tenant_id, change.members)
    before: set[uuid.UUID] = set()
    if group is None:
        group = ScimGroup(tenant_id=tenant_id)
        session.add(group)
    else:
        before = {mid for mid, _ in (await members_of(session, tenant_id, [group.id]))[group.id]}
    renamed = group.display_name != change.display_name
    group.display_name, group.external_id = change.display_name, change.external_id
    group.updated_at = utcnow()
    await session.flush()
    for mid in change.members - before:
        session.add(ScimGroupMember(tenant_id=tenant_id, group_id=group.id, membership_id=mid))
    if gone := before - change.members:
        await session.execute(
            scoped_delete(ScimGroupMember, tenant_id).where(
                ScimGroupMember.group_id == group.id, ScimGroupMember.membership_id.in_(gone)
            )
        )
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="scim.group_save",
        target_type="scim_group",
        target_id=group.id,
        data={
            "display_name": group.display_name,
            "added": sorted(str(m) for m in change.members - before),
            "removed": sorted(str(m) for m in before - change.members),
        },
    )
    # A renamed group maps anew for everyone in it.
    touched = change.members | before if renamed else change.members ^ before
    await regroup(session, principal, touched, effects)
    return group


async def delete_group(
    session: AsyncSession, principal: Principal, group: ScimGroup, effects: Effects
) -> None:
    members = {
        mid for mid, _ in (await members_of(session, principal.tenant_id, [group.id]))[group.id]
    }
    await session.delete(group)
    await session.flush()
    await audit.by(
        session,
        principal,
        action="scim.group_delete",
        target_type="scim_group",
        target_id=group.id,
        data={"display_name": group.display_name, "members": len(members)},
    )
    await regroup(session, principal, members, effects)


async def regroup(
    session: AsyncSession, principal: Principal, membership_ids: set[uuid.UUID], effects: Effects
) -> None:
    """Each member's Navigator groups and role from their SCIM groups: through the
    tenant's SSO mapping when there is one (exactly what their next SSO sign-in reads),
    else each group's name is a Navigator group and the role stays."""
    if not membership_ids:
        return
    tenant_id = principal.tenant_id
    config = await sso.get_config(session, tenant_id)
    names: dict[uuid.UUID, list[str]] = {mid: [] for mid in membership_ids}
    rows = await session.execute(
        scoped(ScimGroupMember, tenant_id)
        .with_only_columns(ScimGroupMember.membership_id, ScimGroup.display_name)
        .join(ScimGroup, ScimGroup.id == ScimGroupMember.group_id)
        .where(ScimGroupMember.membership_id.in_(membership_ids))
    )
    for mid, name in rows.all():
        names[mid].append(name)
    for mid, idp_groups in names.items():
        user = await find_user(session, tenant_id, str(mid))
        await _apply_mapping(session, principal, user, config, sorted(idp_groups), effects)


async def _apply_mapping(
    session: AsyncSession,
    principal: Principal,
    user: ScimUser,
    config: SsoConfig | None,
    idp_groups: list[str],
    effects: Effects,
) -> None:
    m = user.membership
    old_role, old_groups = Role(m.role), list(m.groups or [])
    if config is None:
        role, groups = old_role, sorted({g[:64] for g in idp_groups})
    else:
        role = sso.mapped_role(config, idp_groups) or Role.member
        groups = sso.mapped_groups(config, idp_groups)
        if old_role == Role.owner and role != Role.owner:
            if await accounts.owner_count(session, principal.tenant_id) <= 1:
                role = Role.owner  # never leave the tenant without an owner
    if (old_role, old_groups) == (role, groups):
        return
    m.role, m.groups = role.value, groups
    effects.keys_changed |= old_role != role  # keys follow their creator's role
    await audit.by(
        session,
        principal,
        action="member.scim_update",
        target_type="membership",
        target_id=m.id,
        data={
            "email": user.email,
            "role": {"from": old_role.value, "to": role.value},
            "groups": {"from": old_groups, "to": groups},
            "idp_groups": idp_groups,
        },
    )


# --- discovery --------------------------------------------------------------------------


def _attr(name: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "multiValued": False,
        "required": False,
        "caseExact": False,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
        **extra,
    }


SCHEMAS: dict[str, dict[str, Any]] = {
    USER: {
        "name": "User",
        "description": "A member of the tenant (its account's address is userName)",
        "attributes": [
            _attr("userName", required=True, uniqueness="server", mutability="immutable"),
            _attr(
                "name",
                "complex",
                subAttributes=[_attr(p) for p in NAME_PARTS.values()],
            ),
            _attr("displayName"),
            _attr("externalId", caseExact=True),
            _attr("active", "boolean"),
            _attr(
                "emails",
                "complex",
                multiValued=True,
                subAttributes=[
                    _attr("value"),
                    _attr("type"),
                    _attr("display"),
                    _attr("primary", "boolean"),
                ],
            ),
            _attr(
                "roles",
                "complex",
                multiValued=True,
                mutability="readOnly",
                subAttributes=[_attr("value", mutability="readOnly")],
            ),
        ],
    },
    GROUP: {
        "name": "Group",
        "description": "An IdP group: its members' Navigator groups and role follow it",
        "attributes": [
            _attr("displayName", required=True, uniqueness="server"),
            _attr("externalId", caseExact=True),
            _attr(
                "members",
                "complex",
                multiValued=True,
                subAttributes=[
                    _attr("value", mutability="immutable"),
                    _attr("display", mutability="readOnly"),
                    _attr("$ref", "reference", mutability="immutable"),
                ],
            ),
        ],
    },
}
RESOURCE_TYPES = {"User": ("/Users", USER), "Group": ("/Groups", GROUP)}


def schema_resource(schema_id: str, base: str) -> dict[str, Any]:
    return {
        "schemas": [SCHEMA],
        "id": schema_id,
        **SCHEMAS[schema_id],
        "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{schema_id}"},
    }


def resource_type(name: str, base: str) -> dict[str, Any]:
    endpoint, schema = RESOURCE_TYPES[name]
    return {
        "schemas": [RESOURCE_TYPE],
        "id": name,
        "name": name,
        "endpoint": endpoint,
        "schema": schema,
        "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/{name}"},
    }


def service_provider_config(base: str) -> dict[str, Any]:
    return {
        "schemas": [SPC],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "The tenant's SCIM token, made by an admin: POST /api/scim/token",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base}/ServiceProviderConfig",
        },
    }


# --- HTTP ---------------------------------------------------------------------------------


def _whole_list(items: list[dict[str, Any]]) -> Response[bytes]:
    """A fixed list (resource types, schemas) as one page of a ListResponse."""
    return scim_response(list_response(items, len(items), Page(1, len(items))))


def scim_base(request: Request[Any, Any, Any]) -> str:
    return request.app.state.settings.base_url.rstrip("/") + BASE_PATH


async def _after_commit(
    request: Request[Any, Any, Any], db: AsyncSession, tenant_id: uuid.UUID, effects: Effects
) -> None:
    """Sessions end and keys stop within this request, once the change is committed.
    Should Redis fail here, an ended session's next request still finds the membership
    inactive or gone and is refused."""
    store = request.app.stores.get("sessions")

    async def _end_sessions() -> None:
        if not isinstance(store, ConsoleSessionStore):
            return
        for user_id in effects.sessions_to_end:
            try:
                ended = await store.end_sessions(user_id, tenant_id)
            except RedisError as exc:
                log.warning("scim_sessions_not_ended", error=type(exc).__name__)
            else:
                log.info("scim_sessions_ended", user_id=str(user_id), sessions=ended)

    if effects.sessions_to_end:
        after_commit(db, _end_sessions)
    if effects.keys_changed:
        await key_changed_everywhere(request, db, ALL_KEYS)


Limit = Annotated[str | None, QueryParameter(name="count")]
Start = Annotated[str | None, QueryParameter(name="startIndex")]
Filter = Annotated[str | None, QueryParameter(name="filter")]
Excluded = Annotated[str | None, QueryParameter(name="excludedAttributes")]


class ScimErrorBody(msgspec.Struct):
    schemas: list[str]
    status: str
    detail: str
    scimType: str | None = None  # RFC 7644 names it so


_SCIM_ERRORS = {
    status: ResponseSpec(
        data_container=ScimErrorBody,
        media_type=MEDIA_TYPE,
        description=description,
        generate_examples=False,
    )
    for status, description in (
        (400, "Bad request (scimType says why: invalidFilter, invalidSyntax, invalidValue, …)"),
        (401, "No SCIM token, or a rotated or removed one"),
        (404, "No such resource in this tenant"),
        (409, "Conflicts with an existing resource (scimType uniqueness)"),
    )
}


def _documented(summary: str, ok: int = 200) -> dict[str, Any]:
    """Decorator arguments that put a SCIM operation in the OpenAPI document: its media
    type, a SCIM JSON object on success (its attributes are RFC 7643's, served at
    /Schemas), the errors in SCIM's shape."""
    body = ResponseSpec(
        data_container=dict[str, Any],
        media_type=MEDIA_TYPE,
        description="A SCIM resource or ListResponse (RFC 7643/7644)",
        generate_examples=False,
    )
    return {
        "summary": summary,
        "media_type": MEDIA_TYPE,
        "responses": {**_SCIM_ERRORS, **({ok: body} if ok != 204 else {})},
    }


class ScimApi(Controller):
    """SCIM 2.0 for the tenant's provisioning client (Okta, Entra ID, …). Request bodies
    are SCIM JSON (`application/scim+json` or `application/json`), read as the RFC
    says, so the document shows their operations, not their attributes (`/Schemas`)."""

    path = BASE_PATH
    tags = ["scim"]
    security = [{"scimToken": []}]
    dependencies = {
        "principal": Provide(provide_scim_principal),
        "db": Provide(provide_tenant_db),
    }
    exception_handlers = EXCEPTION_HANDLERS

    @get("/ServiceProviderConfig", **_documented("What this SCIM service supports (RFC 7644 §5)"))
    async def config(self, request: Request[Any, Any, Any], principal: Caller) -> Response[bytes]:
        return scim_response(service_provider_config(scim_base(request)))

    @get("/ResourceTypes", **_documented("The resource types: User and Group"))
    async def resource_types(
        self, request: Request[Any, Any, Any], principal: Caller
    ) -> Response[bytes]:
        base = scim_base(request)
        return _whole_list([resource_type(name, base) for name in RESOURCE_TYPES])

    @get("/ResourceTypes/{type_name:str}", **_documented("One resource type"))
    async def one_resource_type(
        self, request: Request[Any, Any, Any], principal: Caller, type_name: FromPath[str]
    ) -> Response[bytes]:
        if type_name not in RESOURCE_TYPES:
            raise ScimError(404, f"no resource type {type_name[:100]}")
        return scim_response(resource_type(type_name, scim_base(request)))

    @get("/Schemas", **_documented("The User and Group schemas"))
    async def schemas(self, request: Request[Any, Any, Any], principal: Caller) -> Response[bytes]:
        base = scim_base(request)
        return _whole_list([schema_resource(s, base) for s in SCHEMAS])

    @get("/Schemas/{schema_urn:str}", **_documented("One schema, by its URN"))
    async def one_schema(
        self, request: Request[Any, Any, Any], principal: Caller, schema_urn: FromPath[str]
    ) -> Response[bytes]:
        if schema_urn not in SCHEMAS:
            raise ScimError(404, f"no schema {schema_urn[:100]}")
        return scim_response(schema_resource(schema_urn, scim_base(request)))

    # --- users

    @get("/Users", **_documented("Users of the tenant; filter userName, externalId or id with eq"))
    async def users_page(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        where: Filter = None,
        start: Start = None,
        count: Limit = None,
    ) -> Response[bytes]:
        page = page_of(start, count)
        wanted = parse_filter(where, ("userName", "externalId", "id"))
        users, total = await list_users(db, principal.tenant_id, wanted, page)
        base = scim_base(request)
        return scim_response(list_response([user_resource(u, base) for u in users], total, page))

    @get("/Users/{user_id:str}", **_documented("One user (a membership of this tenant)"))
    async def user(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, user_id: FromPath[str]
    ) -> Response[bytes]:
        user = await find_user(db, principal.tenant_id, user_id)
        return scim_response(user_resource(user, scim_base(request)))

    @post(
        "/Users",
        **_documented(
            ok=201, summary="Provision a user (a new account without a password, or 409)"
        ),
    )
    async def new_user(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller
    ) -> Response[bytes]:
        user = await create_user(db, principal, user_in(await _body(request)))
        resource = user_resource(user, scim_base(request))
        return scim_response(resource, 201, {"location": resource["meta"]["location"]})

    @put("/Users/{user_id:str}", **_documented("Replace a user; active false deactivates"))
    async def put_user(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, user_id: FromPath[str]
    ) -> Response[bytes]:
        data = user_in(await _body(request))
        user = await find_user(db, principal.tenant_id, user_id)
        effects = Effects([])
        await replace_user(db, principal, user, data, effects)
        await _after_commit(request, db, principal.tenant_id, effects)
        return scim_response(user_resource(user, scim_base(request)))

    @patch(
        "/Users/{user_id:str}", **_documented("Patch a user (PatchOp as Okta and Entra send it)")
    )
    async def patch_user(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, user_id: FromPath[str]
    ) -> Response[bytes]:
        ops = operations(await _body(request))
        user = await find_user(db, principal.tenant_id, user_id)
        doc = user_document(user.membership, user.email)
        for operation in ops:
            apply_user_operation(doc, operation)
        effects = Effects([])
        await replace_user(db, principal, user, user_in(doc), effects)
        await _after_commit(request, db, principal.tenant_id, effects)
        return scim_response(user_resource(user, scim_base(request)))

    @delete(
        "/Users/{user_id:str}",
        status_code=204,
        **_documented(ok=204, summary="Deprovision a user: sessions end and their keys stop"),
    )
    async def remove_user(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, user_id: FromPath[str]
    ) -> None:
        user = await find_user(db, principal.tenant_id, user_id)
        effects = Effects([])
        await delete_user(db, principal, user, effects)
        await _after_commit(request, db, principal.tenant_id, effects)

    # --- groups

    @get(
        "/Groups",
        **_documented("Groups of the tenant; filter displayName, externalId or id with eq"),
    )
    async def groups_page(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        where: Filter = None,
        start: Start = None,
        count: Limit = None,
        excluded: Excluded = None,
    ) -> Response[bytes]:
        page = page_of(start, count)
        wanted = parse_filter(where, ("displayName", "externalId", "id"))
        groups, total = await list_groups(db, principal.tenant_id, wanted, page)
        members = None
        if "members" not in (excluded or "").lower():
            members = await members_of(db, principal.tenant_id, [g.id for g in groups])
        base = scim_base(request)
        resources = [group_resource(g, members[g.id] if members else None, base) for g in groups]
        return scim_response(list_response(resources, total, page))

    @get("/Groups/{group_id:str}", **_documented("One group"))
    async def group(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        group_id: FromPath[str],
        excluded: Excluded = None,
    ) -> Response[bytes]:
        group = await find_group(db, principal.tenant_id, group_id)
        return scim_response(await self._group(request, db, principal, group, excluded))

    @post("/Groups", **_documented(ok=201, summary="Create a group"))
    async def new_group(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller
    ) -> Response[bytes]:
        change = group_in(await _body(request))
        await self._unique(db, principal, change.display_name, None)
        effects = Effects([])
        group = await save_group(db, principal, None, change, effects)
        await _after_commit(request, db, principal.tenant_id, effects)
        resource = await self._group(request, db, principal, group, None)
        return scim_response(resource, 201, {"location": resource["meta"]["location"]})

    @put("/Groups/{group_id:str}", **_documented("Replace a group and its members"))
    async def put_group(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, group_id: FromPath[str]
    ) -> Response[bytes]:
        change = group_in(await _body(request))
        group = await find_group(db, principal.tenant_id, group_id)
        return await self._save(request, db, principal, group, change)

    @patch("/Groups/{group_id:str}", **_documented("Patch a group (add, remove, replace members)"))
    async def patch_group(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, group_id: FromPath[str]
    ) -> Response[bytes]:
        ops = operations(await _body(request))
        group = await find_group(db, principal.tenant_id, group_id)
        current = (await members_of(db, principal.tenant_id, [group.id]))[group.id]
        change = GroupChange(group.display_name, group.external_id, {m for m, _ in current})
        for operation in ops:
            apply_group_operation(change, operation)
        return await self._save(request, db, principal, group, change)

    @delete(
        "/Groups/{group_id:str}", status_code=204, **_documented(ok=204, summary="Delete a group")
    )
    async def remove_group(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, group_id: FromPath[str]
    ) -> None:
        group = await find_group(db, principal.tenant_id, group_id)
        effects = Effects([])
        await delete_group(db, principal, group, effects)
        await _after_commit(request, db, principal.tenant_id, effects)

    async def _save(
        self,
        request: Request[Any, Any, Any],
        db: AsyncSession,
        principal: Principal,
        group: ScimGroup,
        change: GroupChange,
    ) -> Response[bytes]:
        await self._unique(db, principal, change.display_name, group.id)
        effects = Effects([])
        await save_group(db, principal, group, change, effects)
        await _after_commit(request, db, principal.tenant_id, effects)
        return scim_response(await self._group(request, db, principal, group, None))

    async def _unique(
        self, db: AsyncSession, principal: Principal, name: str, group_id: uuid.UUID | None
    ) -> None:
        stmt = scoped(ScimGroup, principal.tenant_id).where(
            func.lower(ScimGroup.display_name) == name.lower()
        )
        same = (await db.scalars(stmt)).first()
        if same is not None and same.id != group_id:
            raise ScimError(409, f"a group named {name!r} exists", "uniqueness")

    async def _group(
        self,
        request: Request[Any, Any, Any],
        db: AsyncSession,
        principal: Principal,
        group: ScimGroup,
        excluded: str | None,
    ) -> dict[str, Any]:
        members = None
        if "members" not in (excluded or "").lower():
            members = (await members_of(db, principal.tenant_id, [group.id]))[group.id]
        return group_resource(group, members, scim_base(request))


class ScimTokenOut(msgspec.Struct):
    prefix: str
    created_by: str
    created_at: datetime
    base_url: str  # where the provisioning client sends its requests


class ScimTokenCreated(msgspec.Struct):
    token: str  # shown once
    prefix: str
    created_at: datetime
    base_url: str


class ScimTokenApi(Controller):
    path = "/api/scim"
    tags = ["scim"]
    dependencies = {"principal": Provide(provide_api_principal), "db": Provide(provide_tenant_db)}
    security = [{"apiKey": []}]

    @get("/token", summary="The tenant's SCIM token (never the secret) and the SCIM base URL")
    async def read(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller
    ) -> ScimTokenOut:
        principal.require(Role.admin)
        row = await current_token(db, principal.tenant_id)
        if row is None:
            raise NotFound("SCIM provisioning has no token in this tenant")
        return ScimTokenOut(row.prefix, row.created_by, row.created_at, scim_base(request))

    @post(
        "/token",
        summary="Create or rotate the tenant's SCIM bearer token (shown once; the old one stops)",
    )
    async def issue(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller
    ) -> ScimTokenCreated:
        new = await issue_token(db, principal)
        return ScimTokenCreated(new.token, new.row.prefix, new.row.created_at, scim_base(request))

    @delete("/token", summary="Turn SCIM provisioning off (the token stops)", status_code=204)
    async def remove(self, db: Db, principal: Caller) -> None:
        await remove_token(db, principal)
