"""The subscriber the dispatch tests sign up, and the confirmation row they read."""

from __future__ import annotations

from sqlalchemy import select

from service.storage.models import Message
from tests.support.world import Harness

PHONE = "+12125550142"


def confirmation(harness: Harness) -> Message:
    with harness.runtime.sessions() as session:
        message = session.scalar(select(Message).where(Message.kind == "confirm"))
        assert message is not None
        return message
