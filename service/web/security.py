"""HTTP hardening for a service on the public internet (INTERFACE.md §2, issue 11).

Two pure ASGI middlewares (no BaseHTTPMiddleware, so streaming passes untouched):

* `SecurityHeaders`: every response gets `X-Content-Type-Options: nosniff`,
  `X-Frame-Options: DENY`, `Referrer-Policy: same-origin` and a
  Content-Security-Policy with no script at all and `frame-ancestors 'none'`
  (the one-button confirm, unsubscribe and preferences pages must not be framed
  and clicked through). With `STEADY_ENV=production`, `Strict-Transport-Security`.
  A `Location` that names the request's own `Host` (Starlette's trailing-slash
  redirect builds one), or the server's address that Starlette falls back to when `Host`
  will not parse, is made relative: no response builds a URL from `Host` or shows the
  address the server listens on.
  Referrer-Policy stays `same-origin`, not `no-referrer`: with `no-referrer`
  browsers send `Origin: null` on form posts, and the check below needs it.
* `CrossSiteFormGuard`: a POST to the signup, confirm, preferences or admin
  routes is refused (403) when the browser says it came from another site:
  `Sec-Fetch-Site: cross-site`, or an `Origin` other than `STEADY_PUBLIC_URL`'s.
  A request without either (curl, a server calling the JSON API) passes: it is
  no browser, so no victim's ambient cookies or clicks ride on it. RFC 8058
  one-click unsubscribe (`POST /u/{token}`) and the provider webhooks are left
  alone: mail providers and Twilio post them from their own origins.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
BASE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
# Two years and subdomains: what the HSTS preload list asks for.
HSTS = "max-age=63072000; includeSubDomains"
# Form posts a browser could be tricked into sending from another site.
GUARDED_PREFIXES = ("/subscribe", "/confirm/", "/preferences/", "/admin")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443}
# Says what to fix when it is the operator's own browser on another address.
REFUSED_TEXT = (
    "Cross-site request refused: forms are accepted only from this site's own address "
    "(STEADY_PUBLIC_URL)."
)


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` in canonical form (lower case, default port dropped)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, production: bool) -> None:
        self.app = app
        self.headers = dict(BASE_HEADERS)
        if production:
            self.headers["Strict-Transport-Security"] = HSTS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ours = _own_netlocs(scope)

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    if name not in headers:
                        headers[name] = value
                location = headers.get("location")
                if location is not None:
                    headers["location"] = _relative_if_ours(location, ours)
            await send(message)

        await self.app(scope, receive, send_secured)


def _own_netlocs(scope: Scope) -> frozenset[str]:
    """The names a URL built for this request may carry: its `Host`, or, when that will not
    parse, the server's own address, which Starlette falls back to."""
    names = {Headers(scope=scope).get("host", "").lower()}
    server = scope.get("server")
    if server and server[0]:
        host, port = str(server[0]).lower(), server[1]
        names.add(host if port in (None, 80, 443) else f"{host}:{port}")
        names.add(f"{host}:{port}")
    names.discard("")
    return frozenset(names)


def _relative_if_ours(location: str, ours: frozenset[str]) -> str:
    """An absolute Location on the request's own Host, as a path; others unchanged."""
    parts = urlsplit(location)
    if not parts.scheme or not parts.netloc or parts.netloc.lower() not in ours:
        return location
    path = "/" + parts.path.lstrip("/")  # never "//host": that is another site
    return path + (f"?{parts.query}" if parts.query else "")


class CrossSiteFormGuard:
    def __init__(self, app: ASGIApp, *, public_url: str) -> None:
        self.app = app
        self.origin = origin_of(public_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in UNSAFE_METHODS
            and str(scope["path"]).startswith(GUARDED_PREFIXES)
            and self.cross_site(Headers(scope=scope))
        ):
            log.warning("cross_site_post_refused", path_kind=_path_kind(str(scope["path"])))
            response = PlainTextResponse(REFUSED_TEXT, status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def cross_site(self, headers: Headers) -> bool:
        return started_elsewhere(headers, self.origin)


def started_elsewhere(headers: Headers, own_origin: str | None) -> bool:
    """True when the browser says the request started on another site."""
    if headers.get("sec-fetch-site", "").strip().lower() == "cross-site":
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    return origin_of(origin) != own_origin  # "null" and garbage are not ours


def _path_kind(path: str) -> str:
    """The route family for the log, never the token in the path."""
    return next((prefix.strip("/") for prefix in GUARDED_PREFIXES if path.startswith(prefix)), "")
