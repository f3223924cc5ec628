"""Real PostgreSQL (pgvector) and real Redis for the whole run, migrations applied once.

Tests isolate by data: every test builds its own tenants, so nothing is shared between
tests and nothing needs cleaning up.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from posturio.app import create_app
from posturio.config import Settings, load_settings
from posturio.platform import accounts, keys
from posturio.platform.db import create_engine, create_sessionmaker
from posturio.platform.embedded import EmbeddedPostgres, EmbeddedRedis
from posturio.platform.migrate import upgrade
from posturio.platform.models import Role, Scope
from posturio.platform.principal import Principal
from tests.stack_fixtures import (  # noqa: F401 - fixtures for every package
    fake,
    gateway_env,
    navigator_root,
    server,
    worker,
)

# Tests that use any of these run against the real stack (Postgres, Redis, a server, a
# browser); the rest are pure and make up `make test-fast`.
STACK_FIXTURES = frozenset(
    {"services", "settings", "app_engine", "owner_engine", "sessionmaker", "app", "client"}
    | {"make_tenant", "browser", "chromium", "server", "worker", "gateway_env", "fake"}
    | {"stack", "idps", "embedder"}  # an embedded stack, identity providers, the model
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        whole_stack = item.path.name == "test_embedded_stack.py"  # each test starts one
        if whole_stack or STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("services")
    pg = EmbeddedPostgres(root / "postgres")
    redis = EmbeddedRedis(root / "redis", persist=False)
    env = {
        "POSTURIO_DATABASE_URL": pg.start(),
        "POSTURIO_REDIS_URL": redis.start(),
        "POSTURIO_STATE_DIR": str(root / "state"),
        "POSTURIO_SECRET_KEY": secrets.token_urlsafe(40),
        "POSTURIO_ENVIRONMENT": "test",
        "POSTURIO_LOG_JSON": "true",
        "POSTURIO_LOG_LEVEL": "warning",
        # Each app and server of the run would load the model (~10 s of CPU, ~500 MB);
        # the tests that embed load it on first use (the warm-up has its own test).
        "POSTURIO_EMBEDDINGS_WARMUP": "false",
    }
    os.environ.update(env)
    try:
        yield env
    finally:
        redis.stop()
        pg.stop()


@pytest.fixture(scope="session")
def settings(services: dict[str, str]) -> Settings:
    settings = load_settings()
    upgrade(settings)
    return settings


@pytest.fixture(scope="session")
async def app_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """Connections as the application role: row-level security applies."""
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def owner_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """Connections as the schema owner (what an attacker with DB access would be)."""
    engine = create_engine(settings, as_owner=True)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(app_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(app_engine)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture(scope="session")
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as c:
        yield c


@dataclass
class TenantFixture:
    id: uuid.UUID
    slug: str
    owner_email: str
    owner_password: str
    owner_id: uuid.UUID
    admin_key: str
    gateway_key: str

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}


async def build_tenant(
    sessionmaker: async_sessionmaker[AsyncSession], name: str | None = None
) -> TenantFixture:
    """A fresh tenant with an owner, an admin key and a gateway-only key."""
    name = name or f"Tenant {uuid.uuid4().hex[:8]}"
    email = f"owner-{uuid.uuid4().hex[:10]}@example.com"
    password = "correct horse battery staple"
    async with sessionmaker() as session, session.begin():
        tenant = await accounts.create_tenant(session, name, actor="test")
        system = Principal(tenant.id, Role.owner, "test")
        view = await accounts.add_member(session, system, email, Role.owner, password)
        owner = Principal(
            tenant.id,
            Role.owner,
            f"user:{view.membership.user_id}",
            user_id=view.membership.user_id,
        )
        admin = await keys.create_key(
            session, owner, name="admin", scopes=[Scope.admin.value, Scope.gateway.value]
        )
        gateway = await keys.create_key(session, owner, name="gw", scopes=[Scope.gateway.value])
    return TenantFixture(
        tenant.id,
        tenant.slug,
        email,
        password,
        view.membership.user_id,
        admin.plaintext,
        gateway.plaintext,
    )


@pytest.fixture
def make_tenant(sessionmaker: async_sessionmaker[AsyncSession]):  # type: ignore[no-untyped-def]
    """Builder fixture: `await make_tenant()` gives a fresh, isolated tenant."""

    async def build(name: str | None = None) -> TenantFixture:
        return await build_tenant(sessionmaker, name)

    return build


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture
async def browser(client: AsyncTestClient[Litestar]) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app client with a fresh cookie jar, not following redirects (a browser session)."""
    client.cookies.clear()
    client.follow_redirects = False
    try:
        yield client
    finally:
        client.cookies.clear()
        client.follow_redirects = True


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's chromium driven by Playwright (`make test` installs it; nothing downloads).

    Module-scoped: Playwright's sync API runs its own event loop in this thread, which
    must be gone before the next module's async tests run.
    """
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
