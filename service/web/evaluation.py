"""`/admin/evaluation` and `/admin/api/evaluation`: what the decision log says (INTERFACE.md §2).

Behind the admin token like the rest of `/admin` (service.web.admin). The page shows
the effects of each kind of nudge with their intervals as server-side SVG
(service.reporting.effect_charts); the API returns `steady evaluate --json`'s object.
Both read the replica when one is configured. Plain `def` routes: FastAPI runs the
estimation in its thread pool, off the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from service.reporting.effect_charts import evaluation_context
from service.reporting.evaluation import evaluate_database, report_sessions
from service.web import admin_auth
from service.web.admin import _json, _login_page, _secured
from service.web.context import AppContext, app_context

router = APIRouter(prefix="/admin")


def _result(ctx: AppContext) -> dict[str, Any]:
    return evaluate_database(report_sessions(ctx.settings, ctx.sessions), ctx.clock())


@router.get("/evaluation", response_class=HTMLResponse)
def evaluation_page(request: Request) -> Response:
    ctx = app_context(request)
    token = admin_auth.enabled_token(ctx)
    if not admin_auth.authorised(request, ctx, token):
        return _login_page(request, ctx, error=None, status=200)
    context = evaluation_context(_result(ctx))
    return _secured(ctx.pages.TemplateResponse(request, "evaluation.html", context))


@router.get("/api/evaluation")
def api_evaluation(ctx: Annotated[AppContext, Depends(admin_auth.api_context)]) -> JSONResponse:
    return _json(_result(ctx))
