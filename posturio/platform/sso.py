"""OpenID Connect single sign-on, one identity provider per tenant.

Authorization code flow with PKCE, `state` and `nonce` (Authlib builds the request and
the client authentication; joserfc verifies the ID token's signature against the
provider's JWKS and Authlib's CodeIDToken checks its claims: issuer, audience, expiry,
nonce, azp, at_hash). The provider's endpoints come from its discovery document, whose
`issuer` must be the configured one.

The flow is bound to the browser that started it (state, nonce and PKCE verifier live in
its server-side session) and to the tenant it was started for: the callback only ever
asks that tenant's provider, so another tenant's provider cannot sign anyone into this
tenant. A signed-in SSO session stays in that tenant (no switching to the person's other
tenants without signing in there).

On each sign-in the person's role and Navigator groups are read again from the groups
claim through the tenant's mapping; the first sign-in creates the membership (and the
account when the address has none). An address that already has an account elsewhere
joins only through an invitation it accepts, as everywhere else: no tenant's identity
provider attaches another tenant's account.
"""

from __future__ import annotations

import hmac
import html
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast
from urllib.parse import urlsplit

import httpx
import msgspec
import structlog
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet, KeySetSerialization
from joserfc.jws import JWSRegistry
from litestar import Controller, Request, Response, delete, get, put
from litestar.di import Provide
from litestar.params import FromQuery, JSONBody, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.platform import accounts, audit
from posturio.platform.api import key_changed_everywhere
from posturio.platform.crypto import SecretBox
from posturio.platform.db import switch_tenant, utcnow
from posturio.platform.dependencies import (
    Caller,
    Db,
    provide_api_principal,
    provide_db,
    provide_tenant_db,
)
from posturio.platform.errors import Forbidden, NotFound, PosturioError
from posturio.platform.keyauth import ALL_KEYS
from posturio.platform.models import ROLE_RANK, Membership, Role, SsoConfig, User
from posturio.platform.principal import Principal, require_standard_plan
from posturio.platform.repository import scoped
from posturio.platform.schemas import Groups
from posturio.platform.signin import sign_in_failed, start_session

log = structlog.get_logger("posturio.sso")

CALLBACK_PATH = "/sso/callback"
PENDING = "sso_pending"  # the session key of a sign-in in progress
SCOPE = "openid email profile"
PENDING_TTL_S = 600  # a sign-in started more than 10 minutes ago is not finished
DISCOVERY_TTL_S = 3600
LEEWAY_S = 60
MAX_PROVIDERS = 1000
HTTP_TIMEOUT = httpx.Timeout(10.0)
# Asymmetric signatures only: never "none", never a MAC keyed by the client secret.
SIGNING_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
LOOPBACK = ("localhost", "127.0.0.1", "::1")


class SsoError(PosturioError):
    """A sign-in that cannot complete; `reason` goes to the audit log."""

    def __init__(self, message: str, reason: str, status_code: int = 401) -> None:
        super().__init__(message, code="sso_failed", status_code=status_code)
        self.reason = reason


# --- the tenant's settings ---------------------------------------------------------

IdpGroup = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class SsoConfigIn(msgspec.Struct, forbid_unknown_fields=True):
    issuer: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    client_id: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    email_domains: Annotated[list[str], msgspec.Meta(min_length=1, max_length=20)]
    # None keeps the stored secret; "" removes it (a public client: PKCE only).
    client_secret: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    groups_claim: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "groups"
    role_map: Annotated[dict[IdpGroup, Role], msgspec.Meta(max_length=100)] = {}
    group_map: Annotated[dict[IdpGroup, Groups], msgspec.Meta(max_length=100)] = {}
    default_role: Literal["admin", "reviewer", "member"] | None = "member"
    sso_only: bool = False
    enabled: bool = True


class SsoConfigOut(msgspec.Struct):
    issuer: str
    client_id: str
    has_client_secret: bool
    email_domains: list[str]
    groups_claim: str
    role_map: dict[str, str]
    group_map: dict[str, list[str]]
    default_role: str | None
    sso_only: bool
    enabled: bool
    redirect_uri: str
    updated_by: str
    updated_at: str


def config_out(config: SsoConfig, base_url: str) -> SsoConfigOut:
    return SsoConfigOut(
        issuer=config.issuer,
        client_id=config.client_id,
        has_client_secret=config.client_secret_encrypted is not None,
        email_domains=list(config.email_domains),
        groups_claim=config.groups_claim,
        role_map=dict(config.role_map),
        group_map={k: list(v) for k, v in config.group_map.items()},
        default_role=config.default_role,
        sso_only=config.sso_only,
        enabled=config.enabled,
        redirect_uri=redirect_uri(base_url),
        updated_by=config.updated_by,
        updated_at=config.updated_at.isoformat(),
    )


def redirect_uri(base_url: str) -> str:
    return base_url.rstrip("/") + CALLBACK_PATH


def check_issuer(issuer: str) -> str:
    """An https URL (http only for a provider on this machine, to try things out)."""
    issuer = issuer.strip()
    try:
        parts = urlsplit(issuer)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        parts = urlsplit("")
    secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)
    if not parts.hostname or not secure or parts.query or parts.fragment:
        raise PosturioError(
            "issuer must be the provider's https URL, exactly as its discovery document "
            "names it (no query or fragment)",
            code="invalid_issuer",
        )
    return issuer


def check_domain(domain: str) -> str:
    clean = domain.strip().lower().removeprefix("@")
    labels = clean.split(".")
    if len(labels) < 2 or not all(
        label and len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
        for label in labels
    ):
        raise PosturioError(f"not an e-mail domain: {domain[:80]!r}", code="invalid_domain")
    return clean


async def get_config(session: AsyncSession, tenant_id: uuid.UUID) -> SsoConfig | None:
    return (await session.scalars(scoped(SsoConfig, tenant_id))).first()


async def save_config(
    session: AsyncSession, principal: Principal, box: SecretBox, data: SsoConfigIn
) -> SsoConfig:
    principal.require(Role.admin)
    await require_standard_plan(session, principal, "single sign-on")
    if Role.owner in data.role_map.values():
        principal.require(Role.owner)  # only an owner lets the IdP make owners
    config = await get_config(session, principal.tenant_id)
    before = settings_record(config) if config else None
    if config is None:
        config = SsoConfig(tenant_id=principal.tenant_id)
        session.add(config)
    config.issuer = check_issuer(data.issuer)
    config.client_id = data.client_id.strip()
    config.email_domains = sorted({check_domain(d) for d in data.email_domains})
    config.groups_claim = data.groups_claim.strip()
    config.role_map = {g: r.value for g, r in data.role_map.items()}
    config.group_map = {g: sorted(set(v)) for g, v in data.group_map.items()}
    config.default_role = data.default_role
    config.sso_only = data.sso_only
    config.enabled = data.enabled
    secret_changed = data.client_secret is not None
    if data.client_secret is not None:
        config.client_secret_encrypted = (
            box.encrypt(data.client_secret) if data.client_secret else None
        )
    config.updated_by = principal.actor
    config.updated_at = utcnow()
    await session.flush()
    await audit.by(
        session,
        principal,
        action="sso.configure",
        target_type="tenant",
        target_id=principal.tenant_id,
        # Never the secret: only whether it changed.
        data={"from": before, "to": settings_record(config), "secret_changed": secret_changed},
    )
    return config


async def delete_config(session: AsyncSession, principal: Principal) -> None:
    principal.require(Role.admin)
    config = await get_config(session, principal.tenant_id)
    if config is None:
        return
    await session.delete(config)
    await audit.by(
        session,
        principal,
        action="sso.remove",
        target_type="tenant",
        target_id=principal.tenant_id,
        data={"issuer": config.issuer},
    )


def settings_record(config: SsoConfig) -> dict[str, Any]:
    """The settings as SsoConfigIn's fields (the secret left out: None keeps it)."""
    return {
        "issuer": config.issuer,
        "client_id": config.client_id,
        "email_domains": list(config.email_domains),
        "groups_claim": config.groups_claim,
        "role_map": dict(config.role_map),
        "group_map": dict(config.group_map),
        "default_role": config.default_role,
        "sso_only": config.sso_only,
        "enabled": config.enabled,
    }


# --- the provider ---------------------------------------------------------------------


@dataclass(slots=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: list[str]
    jwks: dict[str, Any]
    fetched_at: float


async def _get_json(url: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False) as client:
            response = await client.get(url, headers={"accept": "application/json"})
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SsoError(
            "the identity provider could not be reached; try again later",
            f"provider_unreachable: {type(exc).__name__}",
            status_code=502,
        ) from None
    if not isinstance(body, dict):
        raise SsoError("the identity provider answered nonsense", "provider_bad_json", 502)
    return body


class Providers:
    """Discovery documents and key sets, cached per issuer (bounded, re-read hourly and
    whenever a token names a key the cached set lacks)."""

    def __init__(self) -> None:
        self._cache: OrderedDict[str, Provider] = OrderedDict()

    async def get(self, issuer: str) -> Provider:
        cached = self._cache.get(issuer)
        if cached is not None and time.monotonic() - cached.fetched_at < DISCOVERY_TTL_S:
            return cached
        doc = await _get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        if doc.get("issuer") != issuer:
            raise SsoError(
                "the identity provider's discovery document names another issuer",
                "issuer_mismatch",
                502,
            )
        try:
            provider = Provider(
                issuer=issuer,
                authorization_endpoint=str(doc["authorization_endpoint"]),
                token_endpoint=str(doc["token_endpoint"]),
                jwks_uri=str(doc["jwks_uri"]),
                algorithms=[
                    a
                    for a in doc.get("id_token_signing_alg_values_supported", [])
                    if a in SIGNING_ALGS
                ]
                or ["RS256"],
                jwks=await _get_json(str(doc["jwks_uri"])),
                fetched_at=time.monotonic(),
            )
        except KeyError as exc:
            raise SsoError(
                f"the identity provider's discovery document lacks {exc.args[0]}",
                "discovery_incomplete",
                502,
            ) from None
        self._cache[issuer] = provider
        self._cache.move_to_end(issuer)
        while len(self._cache) > MAX_PROVIDERS:
            self._cache.popitem(last=False)
        return provider

    async def refresh_keys(self, provider: Provider) -> None:
        provider.jwks = await _get_json(provider.jwks_uri)


PROVIDERS = Providers()


# --- the flow ---------------------------------------------------------------------------


def start(provider: Provider, config: SsoConfig, base_url: str) -> tuple[str, dict[str, Any]]:
    """The provider's authorization URL and what the callback must find in the session."""
    pending: dict[str, Any] = {
        "tenant_id": str(config.tenant_id),
        "state": generate_token(43),
        "nonce": generate_token(43),
        "verifier": generate_token(64),  # PKCE: 43-128 characters
        "at": time.time(),
    }
    url = add_params_to_uri(
        provider.authorization_endpoint,
        [
            ("response_type", "code"),
            ("client_id", config.client_id),
            ("redirect_uri", redirect_uri(base_url)),
            ("scope", SCOPE),
            ("state", pending["state"]),
            ("nonce", pending["nonce"]),
            ("code_challenge", create_s256_code_challenge(pending["verifier"])),
            ("code_challenge_method", "S256"),
        ],
    )
    return url, pending


def check_state(pending: dict[str, Any] | None, state: str) -> None:
    """`state` must be the one this browser was given, recently."""
    if not pending:
        raise SsoError("no sign-in is in progress in this browser; start again", "no_pending", 400)
    if not hmac.compare_digest(str(pending.get("state", "")), state):
        raise SsoError("this sign-in answer is not for this browser's sign-in", "state_mismatch")
    if time.time() - float(pending.get("at", 0)) > PENDING_TTL_S:
        raise SsoError("the sign-in took too long; start again", "pending_expired")


async def exchange_code(
    provider: Provider,
    config: SsoConfig,
    box: SecretBox,
    base_url: str,
    code: str,
    verifier: str,
) -> dict[str, Any]:
    """The token endpoint's answer for `code` (client_secret_basic, or a public client)."""
    secret = box.decrypt(config.client_secret_encrypted) if config.client_secret_encrypted else ""
    method = "client_secret_basic" if secret else "none"
    body = httpx.QueryParams(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri(base_url),
            "code_verifier": verifier,
            "client_id": config.client_id,
        }
    )
    headers = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
    uri, headers, payload = ClientAuth(config.client_id, secret, method).prepare(
        "POST", provider.token_endpoint, headers, str(body)
    )
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False) as client:
            response = await client.post(uri, headers=headers, content=payload)
        token = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SsoError(
            "the identity provider could not be reached; try again later",
            f"token_unreachable: {type(exc).__name__}",
            502,
        ) from None
    if response.status_code != 200 or not isinstance(token, dict) or "id_token" not in token:
        error = token.get("error") if isinstance(token, dict) else None
        raise SsoError("the identity provider refused the sign-in", f"token_refused: {error}")
    return token


def _key_set(provider: Provider) -> KeySet:
    # The JWKS is the provider's JSON as fetched; import_key_set checks its shape.
    return KeySet.import_key_set(cast(KeySetSerialization, provider.jwks))


async def verify_id_token(
    providers: Providers,
    provider: Provider,
    config: SsoConfig,
    token: dict[str, Any],
    nonce: str,
    *,
    now: int | None = None,
) -> dict[str, Any]:
    """The ID token's claims once its signature (the provider's JWKS) and its claims
    (issuer, audience, expiry, nonce, azp, at_hash) hold."""
    registry = JWSRegistry(algorithms=provider.algorithms)
    try:
        try:
            decoded = jwt.decode(token["id_token"], _key_set(provider), registry=registry)
        except InvalidKeyIdError:  # the provider rotated its keys since we cached them
            await providers.refresh_keys(provider)
            decoded = jwt.decode(token["id_token"], _key_set(provider), registry=registry)
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {
                "iss": {"essential": True, "value": config.issuer},
                "aud": {"essential": True, "value": config.client_id},
                "exp": {"essential": True},
                "nonce": {"essential": True},
            },
            {
                "nonce": nonce,
                "client_id": config.client_id,
                "access_token": token.get("access_token"),
            },
        )
        claims.validate(now=now, leeway=LEEWAY_S)
    except (JoseError, ValueError, TypeError) as exc:
        raise SsoError(
            "the identity provider's token did not check out", f"id_token_invalid: {exc}"
        ) from None
    return dict(claims)


@dataclass(frozen=True, slots=True)
class Identity:
    email: str
    groups: list[str]
    subject: str


def identity(config: SsoConfig, claims: dict[str, Any]) -> Identity:
    """Who the token names, if the tenant accepts the address."""
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise SsoError("the identity provider sent no e-mail address", "no_email", 403)
    if claims.get("email_verified") is False:
        raise SsoError(
            "the identity provider has not verified this address", "email_unverified", 403
        )
    email = accounts.normalise_email(email)
    domain = email.rpartition("@")[2].lower()
    if domain not in config.email_domains:
        raise SsoError(
            f"addresses at {domain} may not sign in to this tenant", "domain_not_allowed", 403
        )
    raw = claims.get(config.groups_claim, [])
    groups = [raw] if isinstance(raw, str) else [g for g in raw if isinstance(g, str)]
    return Identity(email, groups, str(claims.get("sub", "")))


def mapped_role(config: SsoConfig, groups: list[str]) -> Role | None:
    roles = [Role(config.role_map[g]) for g in groups if g in config.role_map]
    if roles:
        return max(roles, key=ROLE_RANK.__getitem__)
    return Role(config.default_role) if config.default_role else None


def mapped_groups(config: SsoConfig, groups: list[str]) -> list[str]:
    return sorted({s for g in groups for s in config.group_map.get(g, [])})


@dataclass(frozen=True, slots=True)
class Admitted:
    user: User
    membership: Membership
    role_changed: bool  # keys follow the role: reload them everywhere


async def admit(session: AsyncSession, config: SsoConfig, who: Identity) -> Admitted:
    """The membership this sign-in gives: created on first sign-in, its role and groups
    set from the provider's groups on every one."""
    tenant_id = config.tenant_id
    role = mapped_role(config, who.groups)
    if role is None:
        raise SsoError(
            "your groups at the identity provider give no access to this tenant", "no_role", 403
        )
    groups = mapped_groups(config, who.groups)
    user = await accounts.user_by_email(session, who.email)
    membership = None
    if user is not None:
        membership = (
            await session.scalars(
                scoped(Membership, tenant_id).where(Membership.user_id == user.id)
            )
        ).first()
    actor = f"sso:{config.issuer}"
    if membership is None:
        if user is not None and (
            user.password_hash or await accounts.memberships_of(session, user.id, inactive=True)
        ):
            raise SsoError(
                f"{who.email} already has a Posturio account: an admin of this tenant invites "
                "it once (Members → Invite), and single sign-on works after it is accepted",
                "account_exists",
                403,
            )
        if user is None:
            user = User(email=who.email, password_hash=None)
            session.add(user)
            await session.flush()
        membership = Membership(
            tenant_id=tenant_id, user_id=user.id, role=role.value, groups=groups
        )
        session.add(membership)
        await session.flush()
        await accounts.close_invitations(session, tenant_id, user.email)
        await audit.record(
            session,
            tenant_id,
            actor=actor,
            action="member.sso_join",
            target_type="membership",
            target_id=membership.id,
            data={
                "email": user.email,
                "role": role.value,
                "groups": groups,
                "idp_groups": who.groups,
            },
        )
        return Admitted(user, membership, role_changed=False)
    assert user is not None  # a membership was found through the user
    if not membership.active:
        raise SsoError("your access to this tenant has been deactivated", "member_inactive", 403)
    old_role, old_groups = Role(membership.role), list(membership.groups or [])
    if (
        old_role == Role.owner
        and role != Role.owner
        and await accounts.owner_count(session, tenant_id) <= 1
    ):
        role = Role.owner  # the provider never leaves a tenant without an owner
    if (old_role, old_groups) != (role, groups):
        membership.role, membership.groups = role.value, groups
        await audit.record(
            session,
            tenant_id,
            actor=actor,
            action="member.sso_update",
            target_type="membership",
            target_id=membership.id,
            data={
                "email": user.email,
                "role": {"from": old_role.value, "to": role.value},
                "groups": {"from": old_groups, "to": groups},
                "idp_groups": who.groups,
            },
        )
    return Admitted(user, membership, role_changed=old_role != role)


async def tenants_for(session: AsyncSession, who: str) -> list[tuple[uuid.UUID, str, str]]:
    """Tenants whose enabled SSO answers for a slug, an e-mail address or its domain:
    (id, slug, name)."""
    who = who.strip().lower()[:320]
    slug = "" if "@" in who else who
    domain = who.rpartition("@")[2]
    rows = await session.execute(
        text("SELECT tenant_id, slug, name FROM posturio_sso_tenants(:s, :d)"),
        {"s": slug, "d": domain},
    )
    return [(r.tenant_id, r.slug, r.name) for r in rows]


def require_enabled(config: SsoConfig | None) -> SsoConfig:
    if config is None or not config.enabled:
        raise Forbidden("single sign-on is not set up for this tenant", code="sso_not_configured")
    return config


# --- HTTP -----------------------------------------------------------------------------


def _login_page(status_code: int, **context: Any) -> Template:
    return Template("login.html", context={"signed_in": False, **context}, status_code=status_code)


def handoff(url: str) -> Response[str]:
    """The way on to the provider. Not a redirect: the sign-in form's page allows forms
    to reach only this origin (CSP `form-action 'self'`), and browsers hold a redirect
    that answers a form to that too, so the form lands here and this page moves on (a
    refresh, and a link without it)."""
    href = html.escape(url, quote=True)
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0;url={href}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>Signing in · Posturio</title><link rel="stylesheet" href="/static/app.css">'
        '</head><body><main class="narrow"><h1>Signing in</h1>'
        f'<p>On to your identity provider… <a id="sso-continue" href="{href}">Continue</a></p>'
        "</main></body></html>"
    )
    return Response(body, media_type="text/html", headers={"cache-control": "no-store"})


class SsoSignIn(Controller):
    """`/sso?who=<tenant slug or e-mail>` starts a sign-in at the tenant's provider;
    `/sso/callback` finishes it."""

    path = "/sso"
    include_in_schema = False
    dependencies = {"db": Provide(provide_db)}

    @get("/")
    async def begin(
        self, request: Request, db: Db, who: FromQuery[str] = ""
    ) -> Template | Response[str]:
        matches = await tenants_for(db, who) if who.strip() else []
        if not matches:
            return _login_page(
                404, sso_who=who, sso_error="No organisation signs in with SSO under that name."
            )
        if len(matches) > 1:
            return _login_page(200, sso_who=who, sso_choices=matches)
        tenant_id = matches[0][0]
        await switch_tenant(db, tenant_id)
        try:
            config = require_enabled(await get_config(db, tenant_id))
            provider = await PROVIDERS.get(config.issuer)
        except SsoError as exc:
            return _login_page(exc.status_code, sso_who=who, sso_error=exc.message)
        url, pending = start(provider, config, request.app.state.settings.base_url)
        request.set_session({**(request.session or {}), PENDING: pending})
        return handoff(url)

    @get("/callback")
    async def callback(
        self,
        request: Request,
        db: Db,
        code: FromQuery[str] = "",
        returned_state: Annotated[str, QueryParameter(name="state")] = "",
        error: FromQuery[str] = "",
    ) -> Template | Redirect:
        session = dict(request.session or {})
        pending = session.pop(PENDING, None)
        request.set_session(session)  # single use, whatever happens next
        # Our own session says which tenant it was for: failures are audited there.
        tenant_id = uuid.UUID(pending["tenant_id"]) if pending else None
        who: Identity | None = None
        try:
            check_state(pending, returned_state)
            assert pending is not None and tenant_id is not None
            if error or not code:
                raise SsoError("the identity provider did not sign you in", f"idp: {error[:100]}")
            await switch_tenant(db, tenant_id)
            config = require_enabled(await get_config(db, tenant_id))
            provider = await PROVIDERS.get(config.issuer)
            base_url = request.app.state.settings.base_url
            box: SecretBox = request.app.state.secret_box
            token = await exchange_code(
                provider, config, box, base_url, code[:2000], pending["verifier"]
            )
            claims = await verify_id_token(PROVIDERS, provider, config, token, pending["nonce"])
            who = identity(config, claims)
            admitted = await admit(db, config, who)
        except (SsoError, Forbidden) as exc:
            if tenant_id is not None:
                await sign_in_failed(
                    request,
                    db,
                    [tenant_id],
                    user_id=None,
                    method="sso",
                    reason=getattr(exc, "reason", exc.code),
                    email=who.email if who else "",
                )
            log.warning("sso_sign_in_failed", reason=getattr(exc, "reason", exc.code))
            return _login_page(exc.status_code, sso_error=exc.message)
        if admitted.role_changed:
            await key_changed_everywhere(request, db, ALL_KEYS)  # keys follow the new role
        return await start_session(request, db, admitted.user.id, tenant_id, method="sso")


class SsoApi(Controller):
    path = "/api/sso"
    tags = ["sso"]
    dependencies = {"principal": Provide(provide_api_principal), "db": Provide(provide_tenant_db)}
    security = [{"apiKey": []}]

    @get("/", summary="The tenant's single sign-on settings (the client secret never leaves)")
    async def read(self, request: Request, db: Db, principal: Caller) -> SsoConfigOut:
        principal.require(Role.admin)
        config = await get_config(db, principal.tenant_id)
        if config is None:
            raise NotFound("single sign-on is not set up for this tenant")
        return config_out(config, request.app.state.settings.base_url)

    @put("/", summary="Set up or change single sign-on (OpenID Connect)")
    async def write(
        self, request: Request, db: Db, principal: Caller, data: JSONBody[SsoConfigIn]
    ) -> SsoConfigOut:
        config = await save_config(db, principal, request.app.state.secret_box, data)
        return config_out(config, request.app.state.settings.base_url)

    @delete("/", summary="Turn single sign-on off (passwords work again)", status_code=204)
    async def remove(self, db: Db, principal: Caller) -> None:
        await delete_config(db, principal)
