"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from service.messages.content import Content
from service.people.abuse import guard_from_settings
from service.replies.crisis import warm_model
from service.replies.inbound import InboundHandler
from service.sending.wake import CeleryWaker, NullWaker, Waker
from service.settings import Settings, get_settings
from service.storage.db import session_factory
from service.storage.models import utcnow
from service.web import admin, evaluation, health, preferences, review, signup, webhooks
from service.web.body_limit import BodyLimit
from service.web.context import AppContext, make_pages
from service.web.middleware import RequestIdMiddleware
from service.web.security import CrossSiteFormGuard, SecurityHeaders


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """At start: the crisis model trains in the background, before the first text needs it."""
    app.state.crisis_warmup = warm_model()
    yield


def create_app(
    settings: Settings | None = None,
    *,
    sessions: sessionmaker[Session] | None = None,
    waker: Waker | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """Build the app. Everything it uses is passed in or made from the settings."""
    settings = settings or get_settings()
    content = Content()
    if waker is None:
        waker = CeleryWaker(settings.broker_url) if settings.broker_url else NullWaker()
    # The schema of the JSON routes only: pages and webhooks stay out of it.
    app = FastAPI(
        title="Steady",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=_lifespan,
    )
    signups = guard_from_settings(settings)
    sessions = sessions or session_factory(settings.database_url)
    app.state.steady = AppContext(
        settings=settings,
        sessions=sessions,
        replica=(
            session_factory(settings.database_replica_url)
            if settings.database_replica_url
            else None
        ),
        content=content,
        waker=waker,
        inbound=InboundHandler(settings, content, signups),
        pages=make_pages(),
        signups=signups,
        clock=clock,
    )
    app.include_router(signup.router)
    app.include_router(preferences.router)
    app.include_router(webhooks.router)
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(review.router)
    app.include_router(admin.metrics_router)
    app.add_middleware(CrossSiteFormGuard, public_url=settings.public_url)
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders, production=settings.env == "production")
    app.include_router(evaluation.router)
    app.add_middleware(RequestIdMiddleware)
    return app
