"""Operator review under `/admin` (INTERFACE.md §2): routes only; the rules live in
`service.people.review`.

`GET /admin/review` is the page, `GET /admin/api/review` the same list as JSON;
`POST /admin/api/subscribers/{id}/reply` queues one operator-written SMS and
`POST /admin/api/subscribers/{id}/clear-flag` clears a flag. The page's own forms
post to `/admin/review/{id}/reply` and `/admin/review/{id}/clear-flag` and come back
to the page (no script: the admin pages' CSP allows none).

Access is the admin's (`service.web.admin`): a bearer token or the signed session
cookie; every change is a POST, refused when the browser says it came from another
site. The list shows message bodies (reading them is the point) and masked
addresses; bodies never reach the logs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from service.pacing.policy import pacing_policy
from service.people.review import (
    MAX_REPLY_SEGMENTS,
    OperatorReply,
    ReviewError,
    ReviewItem,
    clear_flag,
    review_items,
    send_operator_reply,
)
from service.reporting.records import iso
from service.web import admin, admin_auth
from service.web.context import AppContext

router = APIRouter(prefix="/admin")

MAX_BODY_CHARS = 1000  # far past three segments: the segment count decides, this bounds input
NOTICES = {
    "replied": "Reply queued. It goes out with the next dispatch.",
    "scheduled": "Reply queued for the next opening of their sending window.",
    "cleared": "Flag cleared. Their nudges will be planned again.",
}

Admin = Annotated[AppContext, Depends(admin_auth.api_context)]


class OperatorReplyIn(BaseModel):
    body: str = Field(max_length=MAX_BODY_CHARS)


def _item_json(item: ReviewItem) -> dict[str, Any]:
    return {
        "subscriber_id": item.subscriber_id,
        "reason": item.reason,
        "received_at": iso(item.received_at),
        "body": item.body,
        "flagged_at": iso(item.flagged_at),
        "country": item.country,
        "channels": item.channels,
        "thread": [
            {
                "direction": entry.direction,
                "at": iso(entry.at),
                "body": entry.body,
                "kind": entry.kind,
                "template": entry.template,
                "status": entry.status,
            }
            for entry in item.thread
        ],
    }


def _refused(error: ReviewError) -> HTTPException:
    return HTTPException(status_code=error.status, detail=error.message)


# --- JSON API ------------------------------------------------------------------------------


@router.get("/api/review")
def api_review(ctx: Admin) -> JSONResponse:
    with ctx.sessions() as session:
        items = review_items(session, ctx.clock())
        return admin._json([_item_json(item) for item in items])


@router.post("/api/subscribers/{subscriber_id}/reply")
def api_reply(
    request: Request, ctx: Admin, subscriber_id: admin.SubscriberId, reply: OperatorReplyIn
) -> JSONResponse:
    if not admin._same_origin(request, ctx):
        raise HTTPException(status_code=403, detail="cross-site request refused")
    queued = _reply(ctx, subscriber_id, reply.body)
    response = admin._json(
        {
            "message_id": queued.message_id,
            "scheduled_for": iso(queued.scheduled_for),
            "at_once": queued.at_once,
        }
    )
    response.status_code = 202
    return response


@router.post("/api/subscribers/{subscriber_id}/clear-flag")
def api_clear_flag(request: Request, ctx: Admin, subscriber_id: admin.SubscriberId) -> JSONResponse:
    if not admin._same_origin(request, ctx):
        raise HTTPException(status_code=403, detail="cross-site request refused")
    _clear(ctx, subscriber_id)
    return admin._json({"id": subscriber_id, "flagged": False})


def _reply(ctx: AppContext, subscriber_id: int, body: str) -> OperatorReply:
    now = ctx.clock()
    with ctx.sessions() as session:
        try:
            queued = send_operator_reply(
                session,
                ctx.settings,
                ctx.content,
                pacing_policy(ctx.settings),
                subscriber_id,
                body,
                now,
            )
        except ReviewError as error:
            raise _refused(error) from error
        session.commit()
    if queued.at_once:
        ctx.waker.wake([queued.message_id])  # after the commit that made its row
    return queued


def _clear(ctx: AppContext, subscriber_id: int) -> None:
    with ctx.sessions() as session:
        try:
            clear_flag(session, subscriber_id, ctx.clock())
        except ReviewError as error:
            raise _refused(error) from error
        session.commit()


# --- the page --------------------------------------------------------------------------------


def _page_context(request: Request) -> AppContext | Response:
    """The admin context, or where to go instead: the sign-in page (404 when disabled)."""
    try:
        return admin_auth.api_context(request)
    except HTTPException as exc:
        if exc.status_code == 401:
            return admin._secured(RedirectResponse("/admin", status_code=303))
        raise


def _grouped(items: list[ReviewItem]) -> list[dict[str, Any]]:
    """One card per person: their items, channels and thread, in the list's order."""
    people: dict[int, dict[str, Any]] = {}
    for item in items:
        person = people.setdefault(
            item.subscriber_id,
            {
                "id": item.subscriber_id,
                "flagged_at": item.flagged_at,
                "country": item.country,
                "channels": item.channels,
                "thread": item.thread,
                "items": [],
            },
        )
        person["items"].append(item)
    return list(people.values())


@router.get("/review", response_class=HTMLResponse)
def review_page(request: Request, done: str | None = None) -> Response:
    ctx = _page_context(request)
    if isinstance(ctx, Response):
        return ctx
    return _render_page(request, ctx, notice=NOTICES.get(done or ""))


def _render_page(
    request: Request,
    ctx: AppContext,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    with ctx.sessions() as session:
        items = review_items(session, ctx.clock())
    context = {
        "title": "Review",
        "people": _grouped(items),
        "notice": notice,
        "error": error,
        "max_segments": MAX_REPLY_SEGMENTS,
        "max_chars": MAX_BODY_CHARS,
    }
    page = ctx.pages.TemplateResponse(request, "admin_review.html", context, status_code=status)
    return admin._secured(page)


async def _form_context(request: Request) -> AppContext | Response:
    """The admin context for one of the page's forms, or the answer instead.

    The session check reads the database, so it runs in the thread pool like the
    form's own work (ARCHITECTURE.md: no synchronous database call on the event loop).
    """
    ctx = await run_in_threadpool(_page_context, request)
    if isinstance(ctx, Response):
        return ctx
    if not admin._same_origin(request, ctx):
        return admin._secured(Response("cross-site form refused", 403, media_type="text/plain"))
    return ctx


# The form routes are async to read the form; the session check and their database
# work run in the thread pool.
@router.post("/review/{subscriber_id}/reply")
async def review_reply(request: Request, subscriber_id: admin.SubscriberId) -> Response:
    ctx = await _form_context(request)
    if isinstance(ctx, Response):
        return ctx
    form = await request.form()
    body = str(form.get("body") or "")
    try:
        if len(body) > MAX_BODY_CHARS:
            raise HTTPException(status_code=422, detail="the reply is too long")
        queued = await run_in_threadpool(_reply, ctx, subscriber_id, body)
    except HTTPException as exc:
        # Back to the page, saying why: the operator's text is not lost in a JSON error.
        detail = f"Not sent: {exc.detail}."
        return await run_in_threadpool(_page_with_error, request, ctx, detail, exc.status_code)
    done = "replied" if queued.at_once else "scheduled"
    return admin._secured(RedirectResponse(f"/admin/review?done={done}", status_code=303))


def _page_with_error(request: Request, ctx: AppContext, error: str, status: int) -> Response:
    return _render_page(request, ctx, error=error, status=status)


@router.post("/review/{subscriber_id}/clear-flag")
async def review_clear_flag(request: Request, subscriber_id: admin.SubscriberId) -> Response:
    ctx = await _form_context(request)
    if isinstance(ctx, Response):
        return ctx
    try:
        await run_in_threadpool(_clear, ctx, subscriber_id)
    except HTTPException as exc:
        detail = f"Not cleared: {exc.detail}."
        return await run_in_threadpool(_page_with_error, request, ctx, detail, exc.status_code)
    return admin._secured(RedirectResponse("/admin/review?done=cleared", status_code=303))
