"""The operator's view: a JSON API and a dashboard under `/admin`.

Off unless `STEADY_ADMIN_TOKEN` is set: every `/admin` path then answers 404, as
if it did not exist. The API takes `Authorization: Bearer <token>`; the page asks
for the token once and keeps a session cookie that is signed (itsdangerous with
`STEADY_SECRET_KEY`), HttpOnly, SameSite=Strict, Secure on an https
`STEADY_PUBLIC_URL`, scoped to `/admin` and valid for 12 hours. The cookie holds
a keyed fingerprint of the token, so changing the token ends every session.
The API also accepts that cookie, so the JSON links on the page work.

CSRF: the cookie is SameSite=Strict, so a request started from another site
never carries it, and every change here (log in, log out) is a POST whose Origin,
when the browser sends one, must be this site. Nothing under `/admin` changes
subscriber data.

Operators see addresses masked (`+121•••••42`, `s•••@example.com`) and no
message bodies or notes a person wrote: enough to recognise a case, not to copy
a number out.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from service.ids import MAX_ROW_ID
from service.reporting import metrics, stats
from service.reporting.charts import dashboard_context
from service.reporting.records import iso, message_record, subscriber_record
from service.sending.capacity import BudgetCollector, budget_summary
from service.storage.models import ActivityLog, ContactLog, Message, Subscriber
from service.web.admin_auth import (
    Admin,
    authorised,
    close_session,
    enabled_token,
    lockout_seconds,
    open_session,
    record_failure,
    token_matches,
)
from service.web.context import AppContext, app_context
from service.web.security import origin_of, started_elsewhere

router = APIRouter(prefix="/admin")
# `/metrics` is the other operator endpoint; no token (Prometheus scrapes it) and
# no personal data in it. Restrict it at the proxy if it must not be public.
metrics_router = APIRouter()
log = structlog.get_logger(__name__)

LOCKED_OUT_TEXT = "Too many wrong tokens from here. Try again later."
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_FLAGGED = 1000
RECENT_LOGS = 20
SUBSCRIBER_FILTERS = (*stats.SUBSCRIBER_STATUS_ORDER, "flagged")
# Admin pages must not be cached, framed or leak their URL onward.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


def _same_origin(request: Request, ctx: AppContext) -> bool:
    """False when the browser says the request came from another site.

    The app's CrossSiteFormGuard already refuses those for every POST under
    /admin; routes that check again use the same rule (service/web/security.py).
    """
    return not started_elsewhere(request.headers, origin_of(ctx.settings.public_url))


def _secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _json(content: Any) -> JSONResponse:
    response = JSONResponse(content)
    _secured(response)
    return response


# --- dashboard and session -------------------------------------------------------------


def _login_page(request: Request, ctx: AppContext, *, error: str | None, status: int) -> Response:
    response = ctx.pages.TemplateResponse(
        request, "admin_login.html", {"title": "Steady admin", "error": error}, status_code=status
    )
    return _secured(response)


@router.get("", response_class=HTMLResponse, include_in_schema=False)
def dashboard(request: Request) -> Response:
    ctx = app_context(request)
    token = enabled_token(ctx)
    if not authorised(request, ctx, token):
        return _login_page(request, ctx, error=None, status=200)
    now = ctx.clock()
    with ctx.read_sessions() as session:
        figures = stats.dashboard(session, now)
        flagged = _flagged(session, limit=RECENT_LOGS)
    budget = ctx.budget_figures.report()
    context = dashboard_context(figures, [subscriber_record(s) for s in flagged])
    context.update(budget=budget, budget_line=budget_summary(budget))
    return _secured(ctx.pages.TemplateResponse(request, "admin.html", context))


async def _given_token(request: Request) -> str:
    form = await request.form()
    return str(form.get("token") or "").strip()


@router.post("/login", include_in_schema=False)
def login(request: Request, given: Annotated[str, Depends(_given_token)]) -> Response:
    """Cross-site posts never get here (service/web/security.py)."""
    ctx = app_context(request)
    token = enabled_token(ctx)
    retry_after = lockout_seconds(request, ctx)
    if retry_after is not None:
        response = _login_page(request, ctx, error=LOCKED_OUT_TEXT, status=429)
        response.headers["Retry-After"] = str(retry_after)
        return response
    if not given or not token_matches(given, token):
        record_failure(request, ctx, "login")
        return _login_page(request, ctx, error="That token is not right.", status=401)
    response = RedirectResponse("/admin", status_code=303)
    open_session(ctx, token, response)
    log.info("admin_login")
    return _secured(response)


@router.post("/logout", include_in_schema=False)
def logout(request: Request) -> Response:
    """Ends the session server-side: a copy of the cookie stops working too."""
    ctx = app_context(request)
    enabled_token(ctx)
    response = RedirectResponse("/admin", status_code=303)
    close_session(request, ctx, response)
    return _secured(response)


# --- JSON API --------------------------------------------------------------------------


def _flagged(session: Session, *, limit: int) -> list[Subscriber]:
    return list(
        session.scalars(
            select(Subscriber)
            .options(selectinload(Subscriber.channels))
            .where(Subscriber.flagged_at.is_not(None))
            .order_by(Subscriber.flagged_at.desc(), Subscriber.id.desc())
            .limit(limit)
        )
    )


def _subscriber_or_404(session: Session, subscriber_id: int) -> Subscriber:
    subscriber = session.scalar(
        select(Subscriber)
        .options(selectinload(Subscriber.channels))
        .where(Subscriber.id == subscriber_id)
    )
    if subscriber is None:
        raise HTTPException(status_code=404, detail="no such subscriber")
    return subscriber


PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
After = Annotated[
    int | None, Query(ge=0, le=MAX_ROW_ID, description="Return ids greater than this one.")
]
# Ids are 64-bit: a bigger number is a 422, never a database overflow.
SubscriberId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


@router.get("/api/stats")
def api_stats(ctx: Admin) -> JSONResponse:
    with ctx.read_sessions() as session:
        figures = stats.collect(session, ctx.clock())
    figures["sms_budget"] = ctx.budget_figures.report()
    return _json(figures)


@router.get("/api/subscribers")
def api_subscribers(
    ctx: Admin,
    status: str | None = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
    after: After = None,
) -> JSONResponse:
    """Subscribers in id order, `limit` at a time; pass `next_after` back as `after`."""
    if status is not None and status not in SUBSCRIBER_FILTERS:
        raise HTTPException(
            status_code=422,
            detail=[{"field": "status", "message": "one of " + ", ".join(SUBSCRIBER_FILTERS)}],
        )
    query = select(Subscriber).options(selectinload(Subscriber.channels))
    if status == "flagged":
        query = query.where(Subscriber.flagged_at.is_not(None))
    elif status is not None:
        query = query.where(Subscriber.id.in_(stats.subscriber_ids_with_status(status)))
    if after is not None:
        query = query.where(Subscriber.id > after)
    with ctx.sessions() as session:
        page = list(session.scalars(query.order_by(Subscriber.id).limit(limit)))
        rows = [subscriber_record(subscriber) for subscriber in page]
    return _json({"subscribers": rows, "next_after": page[-1].id if len(page) == limit else None})


@router.get("/api/subscribers/{subscriber_id}")
def api_subscriber(ctx: Admin, subscriber_id: SubscriberId) -> JSONResponse:
    with ctx.sessions() as session:
        detail = subscriber_record(_subscriber_or_404(session, subscriber_id))
        detail["contact_logs"] = {
            "count": session.scalar(
                select(func.count()).where(ContactLog.subscriber_id == subscriber_id)
            ),
            "recent": [
                {
                    "initiator": row.initiator,
                    "medium": row.medium,
                    "occurred_at": iso(row.occurred_at),
                }
                for row in session.scalars(
                    select(ContactLog)
                    .where(ContactLog.subscriber_id == subscriber_id)
                    .order_by(ContactLog.occurred_at.desc(), ContactLog.id.desc())
                    .limit(RECENT_LOGS)
                )
            ],
        }
        # The area only: a note is the person's own words.
        detail["activity_logs"] = {
            "count": session.scalar(
                select(func.count()).where(ActivityLog.subscriber_id == subscriber_id)
            ),
            "recent": [
                {"area": row.area, "occurred_at": iso(row.occurred_at)}
                for row in session.scalars(
                    select(ActivityLog)
                    .where(ActivityLog.subscriber_id == subscriber_id)
                    .order_by(ActivityLog.occurred_at.desc(), ActivityLog.id.desc())
                    .limit(RECENT_LOGS)
                )
            ],
        }
        by_status = session.execute(
            select(Message.status, func.count())
            .where(Message.subscriber_id == subscriber_id)
            .group_by(Message.status)
        )
        detail["messages"] = {str(status): int(count) for status, count in by_status}
    return _json(detail)


@router.get("/api/subscribers/{subscriber_id}/messages")
def api_subscriber_messages(
    ctx: Admin, subscriber_id: SubscriberId, limit: PageSize = MAX_PAGE_SIZE, after: After = None
) -> JSONResponse:
    """Their messages, oldest first; no bodies (replies keep theirs in the database)."""
    query = select(Message).where(Message.subscriber_id == subscriber_id)
    if after is not None:
        query = query.where(Message.id > after)
    with ctx.sessions() as session:
        _subscriber_or_404(session, subscriber_id)
        page = list(session.scalars(query.order_by(Message.id).limit(limit)))
    rows = [message_record(message) for message in page]
    return _json({"messages": rows, "next_after": page[-1].id if len(page) == limit else None})


@router.get("/api/flagged")
def api_flagged(ctx: Admin) -> JSONResponse:
    """Flagged subscribers, latest first: an array (INTERFACE.md §2)."""
    with ctx.sessions() as session:
        return _json(
            [subscriber_record(subscriber) for subscriber in _flagged(session, limit=MAX_FLAGGED)]
        )


@metrics_router.get("/metrics")
def prometheus_metrics(request: Request) -> Response:
    """Prometheus text exposition: database figures plus this process's counters."""
    ctx = app_context(request)
    body, content_type = metrics.render(
        ctx.read_sessions,
        ctx.clock,
        extra=[BudgetCollector(ctx.budget_figures)],
    )
    return Response(body, media_type=content_type)
