"""What the copy says: no manipulative tactics, and partner, never husband or wife."""

from __future__ import annotations

import re

import pytest

from service.messages.catalog import BOTH_CHANNEL_TEMPLATES
from service.messages.content import TEMPLATES_DIR, Content, sample_context
from tests.messages.template_rules import ALL_SMS

# Ideas Steady never suggests (PRODUCT.md, "What not to do").
MANIPULATIVE_IDEAS = (
    r"jealous\w*",
    r"make them jealous",
    r"bump(?:ing)? into",
    r"(?:accidentally|happen to) run into",
    r"run into them",
    r"check(?:ing)? their social media",
    r"social media",
    r"track(?:ing|ed)?",
    r"spy(?:ing)?",
    r"stalk\w*",
    r"drive (?:by|past)",
)
MANIPULATIVE = re.compile(r"\b(?:" + "|".join(MANIPULATIVE_IDEAS) + r")\b", re.IGNORECASE)
GENDERED_PARTNER = re.compile(r"\b(?:husband|wife|spouse)s?\b", re.IGNORECASE)


# --- what the copy says -----------------------------------------------------------


def every_rendering(content: Content) -> list[tuple[str, str]]:
    """(label, text) for every SMS and email part in both modes."""
    out: list[tuple[str, str]] = []
    for discreet in (False, True):
        for name in ALL_SMS:
            out.append((f"sms/{name}", content.sms(name, sample_context(discreet=discreet))))
        for name in BOTH_CHANNEL_TEMPLATES:
            email = content.email(name, sample_context(discreet=discreet, channel="email"))
            out += [(f"email/{name}", email.subject), (f"email/{name}", email.text)]
    return out


def test_no_template_suggests_manipulative_tactics(content: Content) -> None:
    raw = [(str(p), p.read_text()) for p in TEMPLATES_DIR.rglob("*") if p.is_file()]
    offending = [
        (label, m.group(0))
        for label, text in raw + every_rendering(content)
        for m in MANIPULATIVE.finditer(text)
    ]
    assert offending == []


@pytest.mark.parametrize(
    "text",
    [
        "Make them jealous",
        "you might bump into them",
        "accidentally run into them",
        "check their social media",
        "track where they go",
        "spy on them",
    ],
)
def test_manipulation_check_catches_banned_ideas(text: str) -> None:
    assert MANIPULATIVE.search(text)


def test_copy_says_partner_never_husband_wife_or_spouse(content: Content) -> None:
    offending = [label for label, text in every_rendering(content) if GENDERED_PARTNER.search(text)]
    assert offending == []
