"""The statuses providers report are the message statuses the database stores."""

from __future__ import annotations

from typing import get_args

from service.providers.base import DeliveryStatus
from service.providers.sendgrid.codes import STATUSES as SENDGRID_STATUSES
from service.providers.twilio.codes import STATUSES as TWILIO_STATUSES
from service.storage.models import MessageStatus


def test_every_reported_status_is_a_message_status() -> None:
    stored = {str(status) for status in MessageStatus}
    assert set(get_args(DeliveryStatus)) <= stored
    assert set(TWILIO_STATUSES.values()) <= stored
    assert set(SENDGRID_STATUSES.values()) <= stored
