"""create_app(): one Litestar app mounting every router."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from litestar import Litestar, asgi
from litestar.config.csrf import CSRFConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ASGIApp, Receive, Scope, Send

from posturio.config import Settings, get_settings
from posturio.console.audit import AuditPage
from posturio.console.auth import ConsoleAuth, ConsoleHome, InvitationPage
from posturio.console.investigations import InvestigationsPage
from posturio.console.keys import KeysPage
from posturio.console.members import MembersPage
from posturio.console.navigator import AskPage, console_answer
from posturio.console.overview import OverviewPage
from posturio.console.playground import PlaygroundPage, playground_chat
from posturio.console.policies import PoliciesPage
from posturio.console.requests import RequestsPage
from posturio.console.review import ReviewPage
from posturio.console.routes import RoutesPage
from posturio.console.sources import SourcesPage
from posturio.console.sso import SsoPage
from posturio.gateway.api import GatewayAdminApi
from posturio.gateway.asgi import GatewayASGI
from posturio.gateway.investigations_api import InvestigationsApi
from posturio.gateway.policy.api import PolicyApi
from posturio.gateway.setup import build_gateway
from posturio.navigator.answers import NAVIGATOR_ALIAS, Answerer, answer_endpoint
from posturio.navigator.api import NavigatorApi
from posturio.navigator.reader_api import NavigatorReaderApi
from posturio.platform.api import AdminApi
from posturio.platform.crypto import SecretBox
from posturio.platform.db import create_engine, create_sessionmaker
from posturio.platform.errors import EXCEPTION_HANDLERS
from posturio.platform.headers import SecurityHeadersMiddleware
from posturio.platform.health import healthz, readyz
from posturio.platform.inputs import CheckedRequest, ErrorResponses, reject_nul_in_url
from posturio.platform.invalidation import KEYS, POLICIES, ROUTES, InvalidationHub
from posturio.platform.keyauth import CachedKey, KeyAuthenticator
from posturio.platform.logging import RequestIdMiddleware, configure_logging
from posturio.platform.public import PublicPages
from posturio.platform.redis import create_redis
from posturio.platform.scim import ScimApi, ScimTokenApi
from posturio.platform.sessions import ConsoleSessionConfig, ConsoleSessionStore
from posturio.platform.sso import SsoApi, SsoSignIn
from posturio.workers.broker import setup_broker

TEMPLATES = Path(__file__).parent / "console" / "templates"
STATIC = Path(__file__).parent / "console" / "static"
# Paths authenticated by API keys (no cookies), so CSRF does not apply to them.
NO_CSRF = ["^/api/", "^/v1/", "^/scim/", "^/healthz", "^/readyz", "^/metrics", "^/schema"]


_gateway_asgi = GatewayASGI()


@asgi("/v1", is_mount=True, copy_scope=True)
async def gateway_mount(scope: Scope, receive: Receive, send: Send) -> None:
    """/v1 inside Litestar (tests, embedding); `create_asgi` skips Litestar for it."""
    await _gateway_asgi(scope, receive, send)  # type: ignore[arg-type]


def create_asgi() -> ASGIApp:
    """What `posturio serve` runs: /v1 straight to the gateway, the rest to Litestar."""
    app = create_app()
    gateway = GatewayASGI(app)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            await gateway(scope, receive, send)  # type: ignore[arg-type]
        else:
            await app(scope, receive, send)

    return dispatch


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    secret = settings.resolved_secret_key()
    redis = create_redis(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = create_engine(settings)
        broker = setup_broker(settings)
        from posturio.platform.tasks import touch_api_key

        loop = asyncio.get_running_loop()

        def record_use(key: CachedKey, at: datetime) -> None:
            # Enqueueing is a blocking Redis call: run it off the event loop, fire and forget.
            loop.run_in_executor(
                None, touch_api_key.send, str(key.tenant_id), str(key.id), at.isoformat()
            )

        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.redis = redis
        app.state.broker = broker
        app.state.key_authenticator = KeyAuthenticator(
            app.state.sessionmaker, ttl_s=settings.api_key_cache_ttl_s, on_used=record_use
        )
        app.state.secret_box = SecretBox(settings.resolved_encryption_key())
        gateway, upstreams = build_gateway(
            settings,
            app.state.sessionmaker,
            redis,
            app.state.key_authenticator,
            app.state.secret_box,
        )
        app.state.gateway = gateway
        # Navigator answers through the gateway; the gateway knows it only as a model.
        app.state.answerer = Answerer(settings, app.state.sessionmaker)
        gateway.virtual_models[NAVIGATOR_ALIAS] = app.state.answerer.v1_model
        app.state.answerer.attach(gateway)  # the extractive writer, a gateway provider
        hub = InvalidationHub()
        hub.on(KEYS, app.state.key_authenticator.invalidate)
        hub.on(ROUTES, gateway.routes.invalidate)
        hub.on(POLICIES, gateway.policies.invalidate)
        background = [
            asyncio.create_task(hub.run(redis)),
            asyncio.create_task(gateway.recorder.run()),
        ]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(Exception):
                await asyncio.wait_for(gateway.recorder.flush(), 5)
            await upstreams.close()
            await engine.dispose()
            await redis.aclose()
            broker.close()

    openapi = OpenAPIConfig(
        title="Posturio",
        version="0.1.0",
        path="/schema",
        render_plugins=[SwaggerRenderPlugin(path="/"), JsonRenderPlugin(path="/openapi.json")],
        components=Components(
            security_schemes={
                "apiKey": SecurityScheme(
                    type="http", scheme="bearer", description="Tenant API key"
                ),
                "scimToken": SecurityScheme(type="http", scheme="bearer", description="SCIM token"),
            }
        ),
    )
    return Litestar(
        route_handlers=[
            healthz,
            readyz,
            gateway_mount,
            AdminApi,
            GatewayAdminApi,
            PolicyApi,
            InvestigationsApi,
            NavigatorApi,
            NavigatorReaderApi,
            answer_endpoint,
            PublicPages,
            PlaygroundPage,
            playground_chat,
            ConsoleAuth,
            InvitationPage,
            SsoSignIn,
            SsoApi,
            ScimApi,
            ScimTokenApi,
            ConsoleHome,
            OverviewPage,
            RequestsPage,
            ReviewPage,
            InvestigationsPage,
            PoliciesPage,
            SourcesPage,
            AskPage,
            console_answer,
            KeysPage,
            MembersPage,
            SsoPage,
            AuditPage,
            RoutesPage,
            create_static_files_router(
                path="/static", directories=[STATIC], send_as_attachment=False
            ),
            MetricsController,
        ],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=CheckedRequest,  # JSON bodies: bounded depth, no NUL
        plugins=[ErrorResponses()],  # the error envelope and statuses in OpenAPI
        openapi_config=openapi,
        middleware=[
            RequestIdMiddleware,
            reject_nul_in_url,
            SecurityHeadersMiddleware(),
            PrometheusConfig(
                app_name="posturio", prefix="posturio", group_path=True, exclude=["^/metrics"]
            ).middleware,
            ConsoleSessionConfig(
                store="sessions",
                max_age=12 * 3600,
                httponly=True,
                secure=settings.cookies_secure,
                samesite="lax",
                exclude=["^/api/", "^/v1/", "^/scim/", "^/healthz", "^/readyz", "^/metrics"],
            ).middleware,
        ],
        csrf_config=CSRFConfig(
            secret=secret,
            cookie_name="posturio_csrf",
            cookie_secure=settings.cookies_secure,
            cookie_httponly=True,
            cookie_samesite="lax",
            exclude=NO_CSRF,
        ),
        stores={"sessions": ConsoleSessionStore(redis, namespace="posturio:sessions")},
        template_config=TemplateConfig(
            directory=TEMPLATES,
            engine=JinjaTemplateEngine,
        ),
        request_max_body_size=settings.max_body_bytes,
        debug=False,
        logging_config=None,  # ours: structured JSON via configure_logging
    )
