"""`steady sandbox`: local stand-ins for the Twilio and SendGrid REST APIs on one port.

The real SDKs talk to it unchanged (point `STEADY_TWILIO_API_URL` and
`STEADY_SENDGRID_API_URL` at it); it accepts any credentials, answers as the
real APIs do (201 / 202), and sends signed status callbacks and event webhooks
back to Steady. Operators and tests inspect and steer it over JSON:

    GET /sandbox/messages    everything accepted, oldest first (?api=, ?to=, ?limit=)
    DELETE /sandbox/messages forget messages, exchanges and counts
    GET /sandbox/stats       counts (accepted, rejected, callbacks posted/failed/dropped)
    POST /sandbox/faults     add fault rules (one object or a list); GET lists, DELETE clears
    POST /sandbox/inbound    {"from", "body", "to"?}: a subscriber texts Steady
    GET /sandbox/exchanges   the inbound texts played so far and Steady's answers
    GET /sandbox/public-key  the Event Webhook verification key (base64 DER)

Besides sending, it answers the lookups `steady config check` makes
(`GET /2010-04-01/Accounts/{Sid}.json`, `GET /v3/scopes`) and Twilio's message list
and fetch (`GET …/Messages.json`, `GET …/Messages/{Sid}.json`) and SendGrid's Email
Activity filter (`GET /v3/messages?query=unique_args['…']="…"`) for reconciliation.

Twilio and SendGrid wire details live in `sandbox_twilio` and `sandbox_sendgrid`;
the background posting in `sandbox_callbacks`; the state in `sandbox_state`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from service.devtools.sandbox.callbacks import CallbackSender
from service.devtools.sandbox.control import (
    add_faults,
    clear_faults,
    delete_messages,
    get_exchanges,
    get_faults,
    get_messages,
    get_public_key,
    get_stats,
)
from service.devtools.sandbox.inbound import simulate_inbound
from service.devtools.sandbox.sendgrid_api import filter_messages, get_scopes, send_mail
from service.devtools.sandbox.state import (
    DEFAULT_AUTH_TOKEN,
    DEFAULT_MESSAGE_CAPACITY,
    SANDBOX_ACCOUNT_SID,
    MessageLog,
    SandboxState,
    SigningKey,
)
from service.devtools.sandbox.twilio_api import (
    SANDBOX_PHONE_NUMBER,
    create_message,
    fetch_account,
    fetch_message,
    list_messages,
)

if TYPE_CHECKING:
    from service.settings import Settings

SANDBOX_SENDGRID_API_KEY = "SG.sandbox"
SERVER_START_TIMEOUT_SECONDS = 10.0
SERVER_GRACEFUL_SHUTDOWN_SECONDS = 1

TWILIO_MESSAGES_PREFIX = "/2010-04-01/Accounts/"
TWILIO_MESSAGES_SUFFIX = "/Messages.json"


class SendFastPath:
    """Hands the two send endpoints straight to their handlers.

    Every SDK send waits for the sandbox's answer, so the sandbox's per-request cost
    shows up in the sends/s Steady measures against it. Skipping the router and the
    exception middleware for these two paths takes a measurable slice off that
    cost; every other path takes the ordinary route.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            handler: Callable[[Request], Awaitable[Response]] | None = None
            if path == "/v3/mail/send":
                handler = send_mail
            elif path.startswith(TWILIO_MESSAGES_PREFIX) and path.endswith(TWILIO_MESSAGES_SUFFIX):
                account_sid = path[len(TWILIO_MESSAGES_PREFIX) : -len(TWILIO_MESSAGES_SUFFIX)]
                if account_sid and "/" not in account_sid:
                    scope["path_params"] = {"account_sid": account_sid}
                    handler = create_message
            if handler is not None:
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_sandbox_app(
    *,
    public_url: str,
    events_url: str | None = None,
    auth_token: str = DEFAULT_AUTH_TOKEN,
    signing_key_pem: bytes | None = None,
    callbacks: bool = True,
    callback_delay_seconds: float = 0.05,
    account_sid: str = SANDBOX_ACCOUNT_SID,
    message_capacity: int = DEFAULT_MESSAGE_CAPACITY,
) -> Starlette:
    """The sandbox as an ASGI app; its `SandboxState` is `app.state.sandbox`.

    `public_url` is where Steady listens (inbound texts go to
    `<public_url>/webhooks/twilio/inbound`); events go to `events_url`, by default
    `<public_url>/webhooks/sendgrid/events`. Status callbacks go to each message's
    own `StatusCallback`.
    """
    public_url = public_url.rstrip("/")
    state = SandboxState(
        public_url=public_url,
        events_url=events_url or f"{public_url}/webhooks/sendgrid/events",
        auth_token=auth_token,
        signing_key=(
            SigningKey.from_pem(signing_key_pem) if signing_key_pem else SigningKey.generate()
        ),
        callbacks=callbacks,
        callback_delay_seconds=callback_delay_seconds,
        account_sid=account_sid,
        messages=MessageLog(message_capacity),
    )
    sender = CallbackSender(state.counts, delay_seconds=callback_delay_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sender.start()
        try:
            yield
        finally:
            await sender.stop()

    twilio_base = "/2010-04-01/Accounts/{account_sid}"
    routes = [
        Route(f"{twilio_base}/Messages.json", create_message, methods=["POST"]),
        Route(f"{twilio_base}/Messages.json", list_messages, methods=["GET"]),
        Route(f"{twilio_base}/Messages/{{message_sid}}.json", fetch_message, methods=["GET"]),
        Route(f"{twilio_base}.json", fetch_account, methods=["GET"]),
        Route("/v3/mail/send", send_mail, methods=["POST"]),
        Route("/v3/scopes", get_scopes, methods=["GET"]),
        Route("/v3/messages", filter_messages, methods=["GET"]),
        Route("/sandbox/messages", get_messages, methods=["GET"]),
        Route("/sandbox/messages", delete_messages, methods=["DELETE"]),
        Route("/sandbox/stats", get_stats, methods=["GET"]),
        Route("/sandbox/faults", get_faults, methods=["GET"]),
        Route("/sandbox/faults", add_faults, methods=["POST"]),
        Route("/sandbox/faults", clear_faults, methods=["DELETE"]),
        Route("/sandbox/inbound", simulate_inbound, methods=["POST"]),
        Route("/sandbox/exchanges", get_exchanges, methods=["GET"]),
        Route("/sandbox/public-key", get_public_key, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(SendFastPath)])
    app.state.sandbox = state
    app.state.callback_sender = sender
    return app


def _server_config(app: Starlette, host: str, port: int) -> uvicorn.Config:
    # httptools and no access log: per-request cost is what bounds sends/s here.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http="httptools",
        loop="auto",
        access_log=False,
        proxy_headers=False,
        log_level="warning",
        timeout_graceful_shutdown=SERVER_GRACEFUL_SHUTDOWN_SECONDS,
    )


class SandboxServer:
    """The sandbox on 127.0.0.1 in a background thread, for tests and scripts.

    ::

        with SandboxServer(public_url="http://127.0.0.1:8000") as sandbox:
            client.api.base_url = sandbox.url
            sandbox.add_fault(match_to="+15005550001", http_status=400, twilio_code=21211)
    """

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", **app_options: Any) -> None:
        app_options.setdefault("public_url", "http://127.0.0.1:8000")
        self.app = create_sandbox_app(**app_options)
        self.state: SandboxState = self.app.state.sandbox
        self._server = uvicorn.Server(_server_config(self.app, host, port))
        self._thread: threading.Thread | None = None
        self._host = host
        self.url = ""
        self._http: httpx.Client | None = None

    @property
    def public_key_b64(self) -> str:
        return self.state.public_key_b64

    @property
    def auth_token(self) -> str:
        return self.state.auth_token

    def start(self) -> SandboxServer:
        # Server.run picks uvloop when installed; it installs no signal handlers off
        # the main thread.
        self._thread = threading.Thread(target=self._server.run, name="steady-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
        while not self._server.started and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.01)
        if not self._server.started:
            raise RuntimeError("the sandbox did not start")
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://{self._host}:{port}"
        self._http = httpx.Client(base_url=self.url, timeout=10.0, trust_env=False)
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=SERVER_START_TIMEOUT_SECONDS)
            self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._http is None:
            raise RuntimeError("the sandbox is not running")
        response = self._http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def messages(self, api: str | None = None) -> list[dict[str, Any]]:
        """Everything accepted so far, oldest first (optionally one API's)."""
        params = {"api": api} if api else None
        result: list[dict[str, Any]] = self._call("GET", "/sandbox/messages", params=params)
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/sandbox/stats")
        return result

    def reset(self) -> None:
        """Forget messages, exchanges and counts, and clear every fault rule."""
        self._call("DELETE", "/sandbox/messages")
        self._call("DELETE", "/sandbox/faults")

    def add_fault(self, **rule: Any) -> None:
        self._call("POST", "/sandbox/faults", json=rule)

    def inbound(self, from_: str, body: str, to: str | None = None) -> dict[str, Any]:
        """Play a subscriber texting `body`; returns {"status", "twiml", …}."""
        payload = {"from": from_, "body": body, **({"to": to} if to else {})}
        if self._http is None:
            raise RuntimeError("the sandbox is not running")
        result: dict[str, Any] = self._http.post("/sandbox/inbound", json=payload).json()
        return result

    def exchanges(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/sandbox/exchanges")
        return result


def run_sandbox(
    host: str, port: int, settings: Settings, *, signing_key_file: Path | None = None
) -> None:
    """Serve the sandbox until interrupted; print how to point Steady at it.

    The inbound texts are signed with `TWILIO_AUTH_TOKEN` when it is set (so Steady's
    signature check passes unchanged), else with the sandbox's own token, printed.
    `signing_key_file` (PEM, EC P-256) fixes the event-signing key across restarts.
    """
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None
    app = create_sandbox_app(
        public_url=settings.public_url,
        auth_token=token or DEFAULT_AUTH_TOKEN,
        signing_key_pem=signing_key_file.read_bytes() if signing_key_file else None,
        account_sid=settings.twilio_account_sid or SANDBOX_ACCOUNT_SID,
    )
    state: SandboxState = app.state.sandbox
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - display only
    url = f"http://{shown_host}:{port}"
    lines = [
        f"Steady sandbox (Twilio + SendGrid stand-ins) on {url}",
        f"status callbacks: as each message asks; events: {state.events_url}; "
        f"inbound texts: {state.inbound_url}",
        "",
        "Point Steady at it with:",
        f"STEADY_TWILIO_API_URL={url}",
        f"STEADY_SENDGRID_API_URL={url}",
        f"TWILIO_ACCOUNT_SID={settings.twilio_account_sid or SANDBOX_ACCOUNT_SID}",
        "TWILIO_AUTH_TOKEN=(unchanged: inbound texts are signed with yours)"
        if token
        else f"TWILIO_AUTH_TOKEN={DEFAULT_AUTH_TOKEN}",
    ]
    if not (settings.twilio_from_number or settings.twilio_messaging_service_sid):
        lines.append(f"TWILIO_FROM_NUMBER={SANDBOX_PHONE_NUMBER}")
    lines.append(f"SENDGRID_API_KEY={SANDBOX_SENDGRID_API_KEY}")
    if not settings.email_from:
        lines.append("STEADY_EMAIL_FROM=steady@example.com")
    lines.append(f"SENDGRID_WEBHOOK_PUBLIC_KEY={state.public_key_b64}")
    print("\n".join(lines), flush=True)
    uvicorn.Server(_server_config(app, host, port)).run()
