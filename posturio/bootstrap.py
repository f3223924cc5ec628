"""First start of the embedded default: a demo tenant, an owner, a demo API key and the
demo tenant's documents folder."""

from __future__ import annotations

import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from posturio.config import Settings
from posturio.files import write_private
from posturio.gateway import routes
from posturio.gateway.schemas import CredentialIn, CredentialProvider, DeploymentIn, RouteIn
from posturio.navigator import grants
from posturio.platform import accounts, keys
from posturio.platform.crypto import SecretBox
from posturio.platform.db import create_engine, create_sessionmaker, tenant_session
from posturio.platform.models import Role, Scope, Tenant
from posturio.platform.principal import Principal

DEMO_EMAIL = "owner@posturio.demo"
BOOTSTRAP = "system:bootstrap"


@dataclass(frozen=True)
class DemoAccess:
    tenant_name: str
    email: str
    password: str
    api_key: str


async def bootstrap_demo(settings: Settings) -> DemoAccess | None:
    """Create the demo tenant if the database has no tenant yet; None when it has."""
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            if await session.scalar(select(func.count()).select_from(Tenant)):
                return None
            tenant = await accounts.create_tenant(session, "Demo", actor=BOOTSTRAP)
            password = secrets.token_urlsafe(12)
            user = await accounts.ensure_user(session, DEMO_EMAIL, password)
            system = Principal(tenant_id=tenant.id, role=Role.owner, actor=BOOTSTRAP)
            await accounts.add_member(session, system, user.email, Role.owner)
            owner = Principal(tenant.id, Role.owner, f"user:{user.id}", user_id=user.id)
            created = await keys.create_key(
                session, owner, name="demo key", scopes=[Scope.gateway.value, Scope.admin.value]
            )
            demo = DemoAccess(tenant.name, user.email, password, created.plaintext)
            tenant_id, slug = tenant.id, tenant.slug
    finally:
        await engine.dispose()
    await grant_demo_documents(settings, tenant_id, slug)
    return demo


async def grant_demo_documents(settings: Settings, tenant_id: uuid.UUID, slug: str) -> None:
    """The embedded default's documents/<slug>/ folder, made and granted to the demo
    tenant (other tenants get their own folders from the operator). Not when the operator
    names the roots: they grant their own folders."""
    if settings.navigator_roots:
        return
    settings = grants.embedded_roots(settings)
    folder = settings.navigator_roots[0] / slug
    folder.mkdir(parents=True, exist_ok=True)
    await grants.grant_as_operator(settings, tenant_id, str(folder), BOOTSTRAP)


# Provider keys a newcomer may already have in the environment -> routes on the demo tenant.
ENV_PROVIDERS: tuple[tuple[str, CredentialProvider, str, str], ...] = (
    ("OPENAI_API_KEY", "openai", "gpt-4o-mini", "gpt-4o-mini"),
    ("ANTHROPIC_API_KEY", "anthropic", "claude-haiku", "claude-3-5-haiku-latest"),
)


async def provider_routes_from_env(settings: Settings) -> list[str]:
    """With OPENAI_API_KEY / ANTHROPIC_API_KEY set, give the demo tenant a real model
    (credential stored encrypted, once). Returns what was added, for the console."""
    wanted = [entry for entry in ENV_PROVIDERS if os.environ.get(entry[0])]
    if not wanted:
        return []
    engine = create_engine(settings)
    box = SecretBox(settings.resolved_encryption_key())
    added = []
    try:
        sessionmaker = create_sessionmaker(engine)
        async with sessionmaker() as lookup:
            tenant = await accounts.get_tenant_by_ref(lookup, "demo")
        if tenant is None:
            return []
        async with tenant_session(sessionmaker, tenant.id) as session:
            owner = Principal(tenant.id, Role.owner, "system:bootstrap")
            existing = {c.name for c in await routes.list_credentials(session, owner)}
            for var, provider, alias, model in wanted:
                name = f"{provider}-from-env"
                if name in existing:
                    continue
                await routes.add_credential(
                    session,
                    owner,
                    box,
                    CredentialIn(name=name, provider=provider, api_key=os.environ[var]),
                )
                await routes.put_route(
                    session,
                    owner,
                    alias,
                    RouteIn(
                        kind="chat",
                        deployments=[
                            DeploymentIn(
                                name=provider,
                                provider=provider,
                                model=model,
                                credential=name,
                            )
                        ],
                    ),
                )
                added.append(f"{var} found: model alias '{alias}' routes to {provider} {model}")
    finally:
        await engine.dispose()
    return added


def write_demo_env(settings: Settings, demo: DemoAccess) -> Path:
    """demo.env for scripts: readable by its owner only."""
    path = settings.state_dir.resolve() / "demo.env"
    content = (
        f"POSTURIO_BASE_URL={settings.base_url}/v1\n"
        f"POSTURIO_API_KEY={demo.api_key}\n"
        f"POSTURIO_CONSOLE_URL={settings.base_url}/login\n"
        f"POSTURIO_OWNER_EMAIL={demo.email}\n"
        f"POSTURIO_OWNER_PASSWORD={demo.password}\n"
    )
    write_private(path, content)
    return path


def first_request_snippets(settings: Settings, api_key: str) -> str:
    base = f"{settings.base_url}/v1"
    return f"""curl {base}/chat/completions \\
  -H "Authorization: Bearer {api_key}" -H "Content-Type: application/json" \\
  -d '{{"model": "echo", "messages": [{{"role": "user", "content": "Hello, Posturio"}}]}}'

python - <<'PY'
from openai import OpenAI
client = OpenAI(base_url="{base}", api_key="{api_key}")
reply = client.chat.completions.create(
    model="echo", messages=[{{"role": "user", "content": "Hello, Posturio"}}]
)
print(reply.choices[0].message.content)
PY"""
