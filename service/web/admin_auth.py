"""Who may use `/admin`: the bearer token, server-side sessions, and a lockout.

* The API takes `Authorization: Bearer <STEADY_ADMIN_TOKEN>`; the dashboard asks
  for the token once and opens a session.
* A session is a random id in a signed, HttpOnly, SameSite=Strict cookie scoped
  to `/admin`; the server keeps its hash in `admin_sessions` with the keyed
  fingerprint of the token it was opened with. Logging out deletes the row, so a
  copied cookie stops working at once; changing the token ends every session
  (the fingerprint no longer matches); 12 hours end it too.
* Guessing is slow: a client (the address uvicorn resolved, trusting forwarded
  headers only from FORWARDED_ALLOW_IPS; an IPv6 client by its /64) with 5
  failed logins or bearer attempts in 15 minutes gets 429 with Retry-After on
  every login and bearer attempt, the right token included, until the window
  frees. Each failure is logged
  (`admin_auth_failed`, the client address, never what was tried) and counted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Annotated

import structlog
from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete

from service.people.throttle import Limit, client_key
from service.reporting.metrics import record_admin_auth_failure
from service.storage.models import AdminSession
from service.web.context import AppContext, app_context

log = structlog.get_logger(__name__)

SESSION_COOKIE = "steady_admin"
SESSION_SALT = "steady.admin"
SESSION_PATH = "/admin"
SESSION_MAX_AGE = timedelta(hours=12)
SESSION_ID_BYTES = 32
# Failed logins and bearer attempts per client before the lockout.
AUTH_FAILURES = Limit("admin-auth-failures", 5, 15 * 60)
LOCKED_OUT = "too many failed attempts; try again later"

# Declares the bearer scheme in /openapi.json; the check itself is `_bearer_given`.
bearer_scheme = HTTPBearer(auto_error=False, description="STEADY_ADMIN_TOKEN")


def admin_token(ctx: AppContext) -> str | None:
    token = ctx.settings.admin_token
    value = token.get_secret_value() if token is not None else ""
    return value or None


def enabled_token(ctx: AppContext) -> str:
    """The admin token, or 404: with no token the admin does not exist."""
    token = admin_token(ctx)
    if token is None:
        raise HTTPException(status_code=404)
    return token


def _serializer(ctx: AppContext) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(ctx.settings.secret_key.get_secret_value(), salt=SESSION_SALT)


def token_fingerprint(ctx: AppContext, token: str) -> str:
    """Binds a session to the token it was opened with (keyed: the table may leak)."""
    key = ctx.settings.secret_key.get_secret_value().encode()
    return hmac.new(key, b"admin-session:" + token.encode(), hashlib.sha256).hexdigest()


def token_matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# --- guessing ----------------------------------------------------------------------------


def lockout_seconds(request: Request, ctx: AppContext) -> int | None:
    """Seconds this client stays locked out, or None when it may try."""
    verdict = ctx.signups.throttle.test(AUTH_FAILURES, client_key(client_of(request)))
    return None if verdict.allowed else verdict.retry_after


def locked_out_error(retry_after: int) -> HTTPException:
    return HTTPException(429, LOCKED_OUT, headers={"Retry-After": str(retry_after)})


def record_failure(request: Request, ctx: AppContext, method: str) -> None:
    client = client_of(request)
    ctx.signups.throttle.hit(AUTH_FAILURES, client_key(client))
    record_admin_auth_failure(method)
    log.warning("admin_auth_failed", client=client, method=method)


def _bearer_given(request: Request) -> str | None:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given.strip() or None if scheme.lower() == "bearer" else None


# --- sessions ----------------------------------------------------------------------------


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def open_session(ctx: AppContext, token: str, response: Response) -> None:
    """Store a new session and set its cookie on `response`."""
    session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
    now = ctx.clock()
    with ctx.sessions.begin() as db:
        # Expired rows go as new ones come: the table stays as small as the sessions.
        db.execute(delete(AdminSession).where(AdminSession.expires_at <= now))
        db.add(
            AdminSession(
                id_hash=_id_hash(session_id),
                token_fingerprint=token_fingerprint(ctx, token),
                created_at=now,
                expires_at=now + SESSION_MAX_AGE,
            )
        )
    response.set_cookie(
        SESSION_COOKIE,
        _serializer(ctx).dumps(session_id),
        max_age=int(SESSION_MAX_AGE.total_seconds()),
        path=SESSION_PATH,
        secure=ctx.settings.public_url.startswith("https://"),
        httponly=True,
        samesite="strict",
    )


def _session_id(request: Request, ctx: AppContext) -> str | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        value = _serializer(ctx).loads(cookie, max_age=int(SESSION_MAX_AGE.total_seconds()))
    except BadSignature:  # includes SignatureExpired
        return None
    return value if isinstance(value, str) else None


def session_ok(request: Request, ctx: AppContext, token: str) -> bool:
    session_id = _session_id(request, ctx)
    if session_id is None:
        return False
    with ctx.sessions() as db:
        row = db.get(AdminSession, _id_hash(session_id))
        if row is None or row.expires_at <= ctx.clock():
            return False
        return hmac.compare_digest(row.token_fingerprint, token_fingerprint(ctx, token))


def close_session(request: Request, ctx: AppContext, response: Response) -> None:
    """Delete this request's session server-side and clear its cookie."""
    session_id = _session_id(request, ctx)
    if session_id is not None:
        with ctx.sessions.begin() as db:
            db.execute(delete(AdminSession).where(AdminSession.id_hash == _id_hash(session_id)))
    response.delete_cookie(
        SESSION_COOKIE,
        path=SESSION_PATH,
        secure=ctx.settings.public_url.startswith("https://"),
        httponly=True,
        samesite="strict",
    )


# --- the checks the routes use -------------------------------------------------------------


def authorised(request: Request, ctx: AppContext, token: str) -> bool:
    """A right bearer token or a live session. A wrong bearer token counts as a failure;
    a locked-out client gets 429 for any bearer attempt."""
    given = _bearer_given(request)
    if given is not None:
        retry_after = lockout_seconds(request, ctx)
        if retry_after is not None:
            raise locked_out_error(retry_after)
        if token_matches(given, token):
            return True
        record_failure(request, ctx, "bearer")
        return False
    return session_ok(request, ctx, token)


def api_context(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
) -> AppContext:
    """The dependency of every API route: 404 when disabled, 401 without the token."""
    ctx = app_context(request)
    token = enabled_token(ctx)
    if not authorised(request, ctx, token):
        raise HTTPException(
            status_code=401,
            detail="admin token required",
            headers={"WWW-Authenticate": 'Bearer realm="steady-admin"'},
        )
    return ctx


Admin = Annotated[AppContext, Depends(api_context)]
