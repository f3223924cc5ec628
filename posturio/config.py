"""Settings from the environment (POSTURIO_ prefix), validated once at start."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from posturio.files import write_private


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the environment variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POSTURIO_", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    # Where the embedded default keeps Postgres data, Redis data, secrets and demo.env.
    state_dir: Path = Path(".posturio")
    # Unset: the embedded PostgreSQL / Redis under state_dir are used.
    database_url: str | None = None
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Public URL the product is reached at (links, demo.env, Secure cookies when https).
    public_base_url: str | None = None
    # Signs session cookies and keys fingerprints; generated into state_dir when unset
    # outside production.
    secret_key: str | None = Field(None, min_length=32)
    # Fernet key(s) for provider credentials at rest; generated into state_dir outside
    # production. Comma-separated: the first encrypts, all decrypt (rotation).
    encryption_key: str | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Unset: JSON lines, except readable (coloured) lines when stderr is a terminal.
    log_json: bool | None = None
    # `posturio up --detach` writes state_dir/posturio.log, rotated at this size with
    # this many older files kept.
    log_max_bytes: int = Field(10 * 1024 * 1024, ge=4096)
    log_backups: int = Field(5, ge=1, le=100)
    # Proxies whose X-Forwarded-For / -Proto are believed (comma-separated addresses or
    # networks, "*" for any). Empty: none, so a client cannot choose the address that
    # per-address throttles count; set it to the reverse proxy's address behind one.
    forwarded_allow_ips: str = ""
    db_pool_size: int = Field(10, ge=1, le=200)
    db_connect_timeout_s: float = Field(3.0, gt=0, le=60)
    db_statement_timeout_ms: int = Field(15_000, ge=100)
    redis_timeout_s: float = Field(2.0, gt=0, le=60)
    api_key_cache_ttl_s: float = Field(30.0, ge=0, le=3600)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    audit_verify_interval_s: int = Field(3600, ge=10)
    usage_drain_interval_s: int = Field(1, ge=1, le=3600)
    route_cache_ttl_s: float = Field(30.0, ge=0, le=3600)
    # Retries: exponential backoff with full jitter, capped; a longer Retry-After skips ahead.
    retry_base_s: float = Field(0.25, ge=0, le=30)
    retry_cap_s: float = Field(4.0, ge=0, le=120)
    max_retry_after_s: float = Field(10.0, ge=0, le=600)
    breaker_failures: int = Field(3, ge=1, le=100)
    breaker_cooldown_s: float = Field(30.0, ge=0, le=3600)
    web_workers: int = Field(1, ge=1, le=64)
    # Load the built-in embedding model in the background at start (each API process,
    # ~500 MB), so that the first /v1/embeddings or Navigator question does not wait ~10 s.
    embeddings_warmup: bool = True
    # A request body must arrive within this long (slow-drip bodies hold a worker).
    body_read_timeout_s: float = Field(30.0, gt=0, le=600)
    # Throttles for every tenant on the standard plan (unset: none).
    throttle_ip_per_minute: float | None = Field(None, gt=0)
    throttle_tenant_per_minute: float | None = Field(None, gt=0)
    # The public evaluation path: signup from the landing page, demo tenants and keys.
    public_signup: bool = True
    signup_pow_bits: int = Field(18, ge=8, le=32)  # base proof-of-work difficulty
    signup_pow_ttl_s: int = Field(300, ge=30, le=3600)
    signup_per_ip_per_hour: float = Field(10, gt=0)
    # The demo plan (every tenant created by public signup), set by the operator.
    demo_requests_per_day: int = Field(200, ge=1)
    demo_tokens_per_day: int = Field(100_000, ge=1)
    demo_models: list[str] = ["echo"]
    demo_max_tokens: int = Field(512, ge=1)
    demo_max_body_bytes: int = Field(64 * 1024, ge=1024)
    demo_max_messages: int = Field(50, ge=1)
    demo_max_prompt_tokens: int = Field(8_000, ge=1)
    demo_key_days: int = Field(14, ge=1, le=365)
    demo_per_minute: float = Field(30, gt=0)  # per key, per IP and 4x per tenant
    # Navigator: directory sources only under these roots (the operator's allowlist).
    navigator_roots: list[Path] = []
    navigator_max_file_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    navigator_model: str = "all-MiniLM-L6-v2"
    # Hosts or networks URL and git sources may reach although private (e.g. "wiki.corp").
    navigator_url_allowlist: list[str] = []
    # The tenant's chat alias that writes grounded answers; unset (or absent from the
    # tenant's routes) means extractive answers: the best passages, cited, no model.
    navigator_answer_model: str | None = None
    navigator_answer_passages: int = Field(6, ge=1, le=20)
    # Cosine similarity a passage needs to be answered from (with all-MiniLM-L6-v2,
    # unrelated questions stay under ~0.15, answering passages score ~0.25 and up).
    navigator_min_similarity: float = Field(0.25, ge=-1, le=1)

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://")):
            raise ValueError("must be a PostgreSQL URL such as postgresql://user:pass@host:5432/db")
        return v

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a Redis URL such as redis://host:6379/0")
        return v

    @field_validator("public_base_url")
    @classmethod
    def _check_base(cls, v: str | None) -> str | None:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/") if v else None

    @property
    def base_url(self) -> str:
        return self.public_base_url or f"http://{self.host}:{self.port}"

    @property
    def cookies_secure(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def async_database_url(self) -> str:
        """The SQLAlchemy URL (asyncpg driver) for database_url."""
        if self.database_url is None:
            raise ConfigError("POSTURIO_DATABASE_URL is not set and no embedded database runs")
        url = self.database_url
        for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix) :]
        return url

    def resolved_secret_key(self) -> str:
        """The secret key; outside production one is generated once into state_dir."""
        return self._secret("secret_key", self.secret_key, lambda: secrets.token_urlsafe(48))

    def resolved_encryption_key(self) -> str:
        """The Fernet key for secrets at rest; outside production generated like the above."""
        from cryptography.fernet import Fernet

        return self._secret(
            "encryption_key", self.encryption_key, lambda: Fernet.generate_key().decode()
        )

    def _secret(self, name: str, value: str | None, make: Callable[[], str]) -> str:
        if value:
            return value
        if self.environment == "production":
            raise ConfigError(f"POSTURIO_{name.upper()}: required in production")
        path = self.state_dir / name
        if not path.exists():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # another process made it first
                write_private(path, make(), exclusive=True)
        return path.read_text().strip()


def load_settings(**overrides: object) -> Settings:
    """Read and validate the environment; ConfigError names each bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            value = err.get("input")
            shown = "" if field == "secret_key" or value is None else f" (got {value!r})"
            problems.append(f"POSTURIO_{field.upper()}: {err['msg']}{shown}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
