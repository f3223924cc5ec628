"""Assemble the gateway's runtime parts (called from the app's lifespan)."""

from __future__ import annotations

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posturio.config import Settings
from posturio.gateway.inspection.engine import builtin_ruleset
from posturio.gateway.limits import Limiter
from posturio.gateway.pipeline import Gateway
from posturio.gateway.policy.store import loader as policy_loader
from posturio.gateway.providers.anthropic import Anthropic
from posturio.gateway.providers.base import Provider
from posturio.gateway.providers.echo import Echo
from posturio.gateway.providers.http import Upstreams
from posturio.gateway.providers.local import MODEL_NAME as LOCAL_MODEL
from posturio.gateway.providers.local import LocalEmbeddings
from posturio.gateway.providers.openai import OpenAICompatible
from posturio.gateway.routes import loader
from posturio.gateway.routing import Breakers
from posturio.gateway.tiers import tiers
from posturio.gateway.usage import UsageRecorder
from posturio.platform.crypto import SecretBox
from posturio.platform.keyauth import KeyAuthenticator
from posturio.platform.sentence_model import warm_up
from posturio.platform.tenant_cache import TenantCache


def build_gateway(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    authenticator: KeyAuthenticator,
    box: SecretBox,
) -> tuple[Gateway, Upstreams]:
    builtin_ruleset()  # compiled now (about 1.5 s), not on the first request
    if settings.embeddings_warmup:
        # Loaded meanwhile (about 10 s), not by the first /v1/embeddings call; start-up
        # and readiness do not wait for it.
        warm_up(LOCAL_MODEL)
    upstreams = Upstreams()
    providers: dict[str, Provider] = {
        "openai": OpenAICompatible(upstreams),
        "azure": OpenAICompatible(upstreams, azure=True),
        "anthropic": Anthropic(upstreams),
        "echo": Echo(),
        "local": LocalEmbeddings(),
    }
    gateway = Gateway(
        settings,
        authenticator,
        TenantCache(sessionmaker, loader(box), ttl_s=settings.route_cache_ttl_s),
        Limiter(redis),
        UsageRecorder(redis),
        Breakers(
            failures=settings.breaker_failures, cooldown_s=settings.breaker_cooldown_s, redis=redis
        ),
        providers,
        TenantCache(
            sessionmaker,
            policy_loader(settings.resolved_secret_key().encode()),
            ttl_s=settings.route_cache_ttl_s,
        ),
        tiers(settings),
    )
    return gateway, upstreams
