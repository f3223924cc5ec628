"""The public evaluation path: the landing page, signup behind a proof-of-work challenge,
and email verification. `POSTURIO_PUBLIC_SIGNUP=false` turns signup off (self-hosted:
admins create tenants and keys; the API, console and playground stay)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.params import JSONBody, Parameter
from litestar.response import Template
from redis.exceptions import RedisError
from sqlalchemy import text

from posturio.config import Settings
from posturio.platform import accounts, signup
from posturio.platform.db import after_commit
from posturio.platform.dependencies import Db, provide_db
from posturio.platform.errors import NotFound, PosturioError
from posturio.platform.ratelimit import RateLimits, bucket, unavailable

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
Organisation = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ChallengeOut(msgspec.Struct):
    challenge: str
    difficulty: int
    expires_at: int


class SignupIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    organisation: Organisation
    challenge: Annotated[str, msgspec.Meta(max_length=1000)]
    solution: Annotated[str, msgspec.Meta(max_length=40)]


class SignupOut(msgspec.Struct):
    api_key: str  # shown once
    key_prefix: str
    key_expires_at: datetime | None
    tenant: str
    base_url: str
    playground: str
    limits: dict[str, Any]


def client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def base_url(request: Request[Any, Any, Any], settings: Settings) -> str:
    return (settings.public_base_url or str(request.base_url)).rstrip("/")


async def throttle(
    request: Request[Any, Any, Any], what: str, per_minute: float, burst: int
) -> None:
    """A token bucket per client address; refusals are 429 with Retry-After. With Redis
    away the pages stay open (fail open)."""
    ip = client_ip(request)
    check = bucket(
        f"posturio:{what}:ip:{ip}",
        per_minute,
        burst,
        f"too many {what} attempts from your address; wait and try again",
    )
    try:
        refusal = await RateLimits(request.app.state.redis).take([check])
    except RedisError as exc:
        unavailable(ip, exc, fail_open=True)
        return
    if refusal is not None:
        raise PosturioError(
            check.refusal, code="rate_limited", status_code=429, retry_after=refusal.retry_after_s
        )


def _signup_enabled(settings: Settings) -> None:
    if not settings.public_signup:
        raise NotFound("public signup is turned off here; ask an administrator for access")


class PublicPages(Controller):
    path = "/"
    include_in_schema = False
    dependencies = {"db": Provide(provide_db)}

    @get("/")
    async def landing(self, request: Request[Any, Any, Any]) -> Template:
        settings: Settings = request.app.state.settings
        return Template(
            "landing.html",
            context={
                "signed_in": bool(request.session.get("user_id")) if request.session else False,
                "signup": settings.public_signup,
                "base_url": base_url(request, settings),
                "demo_models": settings.demo_models,
                "demo_days": settings.demo_key_days,
                "demo_requests": settings.demo_requests_per_day,
            },
        )

    @post("/signup/challenge", status_code=200)
    async def challenge(self, request: Request[Any, Any, Any]) -> ChallengeOut:
        settings: Settings = request.app.state.settings
        _signup_enabled(settings)
        await throttle(request, "challenge", 30, 10)
        ip = client_ip(request)
        difficulty = await signup.difficulty_for(request.app.state.redis, settings, ip)
        issued = signup.issue(
            settings.resolved_secret_key().encode(), ip, difficulty, settings.signup_pow_ttl_s
        )
        return ChallengeOut(issued.token, issued.difficulty, issued.expires_at)

    @post("/signup", status_code=201)
    async def signup(
        self, request: Request[Any, Any, Any], db: Db, data: JSONBody[SignupIn]
    ) -> SignupOut:
        settings: Settings = request.app.state.settings
        _signup_enabled(settings)
        redis = request.app.state.redis
        ip = client_ip(request)
        accounts.normalise_email(data.email, public=True)  # before the challenge is spent
        nonce, left = signup.check(
            settings.resolved_secret_key().encode(), data.challenge, data.solution, ip
        )
        await throttle(request, "signup", settings.signup_per_ip_per_hour / 60, 3)
        await signup.spend(redis, nonce, left)
        created = await signup.create_demo_tenant(db, settings, data.email, data.organisation)
        after_commit(db, lambda: signup.count_signup(redis, ip))  # counts tenants made
        request.clear_session()
        request.set_session(
            {
                "user_id": str(created.user.id),
                "tenant_id": str(created.tenant.id),
                "playground_key": created.key.key.prefix,
            }
        )
        base = base_url(request, settings)
        return SignupOut(
            api_key=created.key.plaintext,
            key_prefix=created.key.key.prefix,
            key_expires_at=created.key.key.expires_at,
            tenant=created.tenant.name,
            base_url=f"{base}/v1",
            playground=f"{base}/playground",
            limits={
                "models": settings.demo_models,
                "requests_per_day": settings.demo_requests_per_day,
                "tokens_per_day": settings.demo_tokens_per_day,
                "max_tokens": settings.demo_max_tokens,
                "days": settings.demo_key_days,
            },
        )

    @get("/verify-email")
    async def verify_email(
        self, db: Db, token: Annotated[str, Parameter(max_length=200)]
    ) -> Template:
        digest = hashlib.sha256(token.encode()).digest()
        email = await db.scalar(text("SELECT posturio_confirm_email(:h)"), {"h": digest})
        if email is None:
            return Template("verified.html", context={"ok": False}, status_code=404)
        return Template("verified.html", context={"ok": True, "email": email})
