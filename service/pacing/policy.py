"""The pacing policy in force, built from the settings (each limit is a setting)."""

from __future__ import annotations

from datetime import timedelta

from service.pacing.rules import PacingPolicy
from service.settings import Settings


def pacing_policy(settings: Settings) -> PacingPolicy:
    return PacingPolicy(
        window_start_hour=settings.window_start_hour,
        window_end_hour=settings.window_end_hour,
        max_sms_per_24h=settings.max_sms_per_24h,
        min_spacing=timedelta(minutes=settings.min_spacing_minutes),
        expiry_grace=timedelta(minutes=settings.expiry_grace_minutes),
    )
