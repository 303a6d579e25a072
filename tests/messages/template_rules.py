"""Which templates each rule covers, the words and ideas the copy must avoid, sample contexts."""

from __future__ import annotations

import re

from service.messages.catalog import BOTH_CHANNEL_TEMPLATES, SMS_ONLY_TEMPLATES

ALL_SMS = BOTH_CHANNEL_TEMPLATES + SMS_ONLY_TEMPLATES


LOCK_SCREEN_CHARS = 40


SENSITIVE_WORDS = (
    r"separation",
    r"separated",
    r"partner",
    r"spouse",
    r"marriage",
    r"married",
    r"divorce",
    r"husband",
    r"wife",
    r"ex",
    r"breakup",
    r"break[- ]up",
    r"relationship",
    r"reach(?:ed|ing)? out",
    r"contact them",
    r"steady",
)
SENSITIVE = re.compile(r"\b(?:" + "|".join(SENSITIVE_WORDS) + r")\b", re.IGNORECASE)
