"""Liveness and readiness for load balancers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.web.context import app_context

router = APIRouter()


@router.get("/healthz")
def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    ctx = app_context(request)
    checks: dict[str, str] = {}
    try:
        with ctx.sessions() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = type(exc).__name__
    if ctx.settings.broker_url:
        try:
            from service.storage.redis_url import redis_client

            client = redis_client(
                ctx.settings.broker_url, socket_timeout=2, socket_connect_timeout=2
            )
            client.ping()
            client.close()
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"] = type(exc).__name__
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
    )
