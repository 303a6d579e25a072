"""Steady's own do-not-contact list: addresses kept by their keyed hash only.

An address is on it after STOP, an unsubscribe or an erasure, and comes off only
when the person starts again from that address (service.people.subscriptions).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.addresses import AddressHasher
from service.channels import ChannelKind
from service.storage.models import Suppression


def is_suppressed(session: Session, address: str, hasher: AddressHasher) -> bool:
    digest = hasher(address)
    return (
        session.scalar(select(Suppression.id).where(Suppression.address_hash == digest)) is not None
    )


def suppress(
    session: Session,
    address: str,
    channel: ChannelKind,
    reason: str,
    hasher: AddressHasher,
    now: datetime,
) -> None:
    """Add an address to Steady's own do-not-contact list (idempotent)."""
    digest = hasher(address)
    if session.scalar(select(Suppression.id).where(Suppression.address_hash == digest)) is None:
        session.add(
            Suppression(address_hash=digest, channel=channel, reason=reason, created_at=now)
        )


def unsuppress(session: Session, address: str, hasher: AddressHasher) -> None:
    session.execute(delete(Suppression).where(Suppression.address_hash == hasher(address)))
