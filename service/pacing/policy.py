"""The pacing policy in force, built from the configured limits (each limit is a setting).

Pacing imports no settings (ARCHITECTURE.md): the limits arrive as any object with
these attributes, which `service.settings.Settings` is.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from service.pacing.rules import PacingPolicy


class PacingLimits(Protocol):
    @property
    def window_start_hour(self) -> int: ...
    @property
    def window_end_hour(self) -> int: ...
    @property
    def max_sms_per_24h(self) -> int: ...
    @property
    def min_spacing_minutes(self) -> int: ...
    @property
    def expiry_grace_minutes(self) -> int: ...
    @property
    def send_spread_minutes(self) -> int: ...


def pacing_policy(limits: PacingLimits) -> PacingPolicy:
    return PacingPolicy(
        window_start_hour=limits.window_start_hour,
        window_end_hour=limits.window_end_hour,
        max_sms_per_24h=limits.max_sms_per_24h,
        min_spacing=timedelta(minutes=limits.min_spacing_minutes),
        expiry_grace=timedelta(minutes=limits.expiry_grace_minutes),
        spread=timedelta(minutes=limits.send_spread_minutes),
    )
