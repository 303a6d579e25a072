"""A Steady whose webhooks the feedback tests post to directly, signed as the providers sign."""

from __future__ import annotations

import pytest

from tests.sending.feedback.steady import EMAIL, PHONE, PLAIN_KEY
from tests.support.world import Harness, enrol_one_person, make_settings


@pytest.fixture
def plain(database_url: str) -> Harness:
    """Steady with outbox providers; the person has confirmed SMS and email."""
    settings = make_settings(database_url, SENDGRID_WEBHOOK_PUBLIC_KEY=PLAIN_KEY.public_key_b64)
    harness = Harness(settings)
    enrol_one_person(harness, PHONE, EMAIL)
    harness.tick()  # the welcome goes by SMS
    harness.tick()  # and the next nudge is planned
    return harness
