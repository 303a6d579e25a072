"""What every route needs, built once per app and found on `request.app.state`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from jinja2 import StrictUndefined
from sqlalchemy.orm import Session, sessionmaker

from service.addresses import AddressHasher
from service.messages.content import Content
from service.people.abuse import SignupGuard
from service.providers.base import DeliveryReport
from service.replies.inbound import InboundHandler
from service.sending.budget import ReplyCharger
from service.sending.capacity import BudgetFigures
from service.sending.feedback import apply_reports
from service.sending.wake import Waker
from service.settings import Settings
from service.storage.models import Channel, utcnow
from service.tokens import InvalidToken, Purpose, read_token
from service.web.ingest import GroupCommit

PAGES_DIR = Path(__file__).resolve().parent / "pages"


@dataclass
class AppContext:
    settings: Settings
    sessions: sessionmaker[Session]
    content: Content
    waker: Waker
    inbound: InboundHandler
    pages: Jinja2Templates
    # Signup limits and the confirmation budget (service/people/abuse.py).
    signups: SignupGuard
    # The time source; tests run the service at a chosen time.
    clock: Callable[[], datetime] = field(default=utcnow)
    # STEADY_DATABASE_REPLICA_URL's sessions, if set (see `read_sessions`).
    replica: sessionmaker[Session] | None = None
    # Status callbacks, committed in groups (one transaction per batch of
    # concurrent ones; service/web/ingest.py).
    delivery_reports: GroupCommit[DeliveryReport, str] = field(init=False)
    # Hashes addresses for the suppression list (the one use of the secret key there).
    hasher: AddressHasher = field(init=False)
    # TwiML replies are charged to the SMS sender's budget after they went.
    reply_budget: ReplyCharger = field(init=False)
    # The SMS budget estimate for /metrics and the admin pages, at most a minute old.
    budget_figures: BudgetFigures = field(init=False)

    def __post_init__(self) -> None:
        self.delivery_reports = GroupCommit(self._apply_reports)
        self.hasher = AddressHasher(self.settings.secret_key)
        self.reply_budget = ReplyCharger.from_settings(self.settings)
        self.budget_figures = BudgetFigures(self.settings, self.read_sessions, lambda: self.clock())

    @property
    def read_sessions(self) -> sessionmaker[Session]:
        """Where reports and /metrics read: the replica if there is one, else the primary."""
        return self.replica or self.sessions

    def _apply_reports(self, reports: Sequence[DeliveryReport]) -> list[str]:
        with self.sessions.begin() as session:
            return apply_reports(session, reports, self.hasher, self.clock())


def make_pages() -> Jinja2Templates:
    pages = Jinja2Templates(directory=str(PAGES_DIR))
    pages.env.undefined = StrictUndefined
    return pages


def app_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.steady
    return context


def channel_for(session: Session, ctx: AppContext, purpose: Purpose, token: str) -> Channel | None:
    """The channel a link token names, or None if it is forged, expired or for another use."""
    try:
        channel_id = read_token(ctx.settings.secret_key.get_secret_value(), purpose, token)
    except InvalidToken:
        return None
    return session.get(Channel, channel_id)


def invalid_link(request: Request, ctx: AppContext, advice: str) -> Response:
    """The page for a link that no longer works (404, changes nothing)."""
    return ctx.pages.TemplateResponse(
        request,
        "notice.html",
        {
            "title": "This link has expired",
            "paragraphs": [f"The link is not valid any more. {advice}"],
        },
        status_code=404,
    )
