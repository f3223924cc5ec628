"""Public signup: a proof-of-work challenge, then a demo tenant with its owner and key.

The challenge is stateless and signed (HMAC): nonce, difficulty, expiry and the client's
network. The browser finds a counter such that SHA-256(challenge ":" counter) starts
with `difficulty` zero bits. A solution is accepted once: its nonce is kept in Redis
until the challenge expires. Difficulty rises with recent signups from the same network
and with the global signup rate, so a burst costs the sender more and more work."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.config import Settings
from posturio.platform import accounts, audit, keys
from posturio.platform.errors import Conflict, PosturioError
from posturio.platform.models import Membership, OutboxEmail, Role, Scope, Tenant, User
from posturio.platform.principal import SIGNUP, Principal

NET_WINDOW_S = 3600
GLOBAL_WINDOW_S = 600
MAX_EXTRA_BITS = 8


class SignupError(PosturioError):
    status_code = 400


@dataclass(frozen=True, slots=True)
class Challenge:
    token: str
    difficulty: int
    expires_at: int


def network(ip: str) -> str:
    """The address's /24 (IPv4) or /48 (IPv6): one sender rarely has more than that."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, b"pow:" + payload.encode(), hashlib.sha256).digest())


def issue(secret: bytes, ip: str, difficulty: int, ttl_s: int) -> Challenge:
    expires = int(time.time()) + ttl_s
    body = {"n": _b64(secrets.token_bytes(16)), "d": difficulty, "e": expires, "net": network(ip)}
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return Challenge(f"{payload}.{_sign(secret, payload)}", difficulty, expires)


def leading_zero_bits(digest: bytes) -> int:
    bits = 0
    for byte in digest:
        if byte == 0:
            bits += 8
            continue
        return bits + 8 - byte.bit_length()
    return bits


def check(secret: bytes, token: str, solution: str, ip: str) -> tuple[str, int]:
    """(nonce, seconds left) of a valid solution; SignupError says what is wrong."""
    payload, _, signature = token.partition(".")
    if not payload or not hmac.compare_digest(signature, _sign(secret, payload)):
        raise SignupError("the challenge is not one we issued", code="challenge_invalid")
    try:
        body = json.loads(_unb64(payload))
        nonce, difficulty, expires, net = body["n"], int(body["d"]), int(body["e"]), body["net"]
    except (ValueError, KeyError, TypeError):
        raise SignupError("the challenge is malformed", code="challenge_invalid") from None
    left = expires - int(time.time())
    if left <= 0:
        raise SignupError("the challenge expired; start again", code="challenge_expired")
    if net != network(ip):
        raise SignupError("the challenge was issued to another network", code="challenge_invalid")
    if not solution.isdigit() or len(solution) > 20:
        raise SignupError("the solution must be a decimal counter", code="solution_invalid")
    digest = hashlib.sha256(f"{token}:{solution}".encode()).digest()
    if leading_zero_bits(digest) < difficulty:
        raise SignupError("the solution does not solve the challenge", code="solution_invalid")
    return nonce, left


async def spend(redis: Redis, nonce: str, ttl_s: int) -> None:
    if not await redis.set(f"posturio:pow:spent:{nonce}", 1, nx=True, ex=max(1, ttl_s)):
        raise SignupError("this challenge was already used", code="challenge_replayed")


async def difficulty_for(redis: Redis, settings: Settings, ip: str) -> int:
    now = int(time.time())
    net_count, global_count = await redis.mget(
        f"posturio:signup:net:{network(ip)}:{now // NET_WINDOW_S}",
        f"posturio:signup:all:{now // GLOBAL_WINDOW_S}",
    )
    extra = int(net_count or 0) + int(global_count or 0) // 20
    return settings.signup_pow_bits + min(MAX_EXTRA_BITS, extra)


async def count_signup(redis: Redis, ip: str) -> None:
    now = int(time.time())
    net_key = f"posturio:signup:net:{network(ip)}:{now // NET_WINDOW_S}"
    all_key = f"posturio:signup:all:{now // GLOBAL_WINDOW_S}"
    async with redis.pipeline(transaction=False) as pipe:
        pipe.incr(net_key)
        pipe.expire(net_key, NET_WINDOW_S)
        pipe.incr(all_key)
        pipe.expire(all_key, GLOBAL_WINDOW_S)
        await pipe.execute()


@dataclass(frozen=True, slots=True)
class Signup:
    tenant: Tenant
    user: User
    key: keys.CreatedKey
    verify_token: str


async def create_demo_tenant(
    session: AsyncSession, settings: Settings, email: str, organisation: str
) -> Signup:
    """A demo-plan tenant, its owner (no password yet; email verification pending) and a
    demo key that expires after the plan's days. An existing account's email is refused:
    signing up must never sign anyone in as someone else."""
    email = accounts.normalise_email(email, public=True)
    if await accounts.user_by_email(session, email) is not None:
        raise Conflict(
            "an account with this email already exists; sign in instead", code="email_taken"
        )
    tenant = await accounts.create_tenant(session, organisation, actor="signup", plan="demo")
    user = User(email=email, password_hash=None)
    session.add(user)
    await session.flush()
    session.add(Membership(tenant_id=tenant.id, user_id=user.id, role=Role.owner.value))
    await session.flush()
    owner = Principal(tenant.id, Role.owner, SIGNUP, user_id=user.id)
    created = await keys.create_key(
        session,
        owner,
        name="demo",
        scopes=[Scope.gateway.value],
        expires_in_days=settings.demo_key_days,
    )
    token = secrets.token_urlsafe(32)
    base = settings.public_base_url or f"http://{settings.host}:{settings.port}"
    session.add(
        OutboxEmail(
            tenant_id=tenant.id,
            user_id=user.id,
            to_address=email,
            kind="verify_email",
            subject="Confirm your email for Posturio",
            body=f"Confirm your address: {base}/verify-email?token={token}",
            token_hash=hashlib.sha256(token.encode()).digest(),
        )
    )
    await audit.record(
        session,
        tenant.id,
        actor=f"user:{user.id}",
        action="signup",
        target_type="user",
        target_id=user.id,
        data={"email": email, "organisation": tenant.name, "key_prefix": created.key.prefix},
    )
    return Signup(tenant, user, created, token)
