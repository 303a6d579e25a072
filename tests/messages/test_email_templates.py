"""Every email in the catalogue renders with its footer, escapes HTML and keeps discretion."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from service.messages.catalog import BOTH_CHANNEL_TEMPLATES
from service.messages.content import Content, RenderedEmail, sample_context
from tests.messages.template_rules import LOCK_SCREEN_CHARS, SENSITIVE


def email_context(**overrides: Any) -> dict[str, Any]:
    """Sample email context with some values replaced."""
    return {**sample_context(channel="email"), **overrides}


# --- email ------------------------------------------------------------------------


@pytest.mark.parametrize("discreet", [False, True], ids=["plain", "discreet"])
@pytest.mark.parametrize("name", BOTH_CHANNEL_TEMPLATES)
def test_email_renders_with_footer_links_and_postal_address(
    content: Content, name: str, discreet: bool
) -> None:
    context = sample_context(discreet=discreet, channel="email")
    email = content.email(name, context)
    assert isinstance(email, RenderedEmail)
    assert email.subject
    assert "\n" not in email.subject
    assert email.subject == email.subject.strip()
    for body in (email.text, email.html):
        assert context["postal_address"] in body
        assert context["unsubscribe_url"] in body
        assert context["preferences_url"] in body


@pytest.mark.parametrize("name", BOTH_CHANNEL_TEMPLATES)
def test_discreet_email_subject_and_opening_hide_sensitive_words(
    content: Content, name: str
) -> None:
    email = content.email(name, sample_context(discreet=True, channel="email"))
    assert SENSITIVE.search(email.subject[:LOCK_SCREEN_CHARS]) is None, email.subject
    # Mail apps preview the start of the body next to the subject.
    assert SENSITIVE.search(email.text[:LOCK_SCREEN_CHARS]) is None, email.text


@pytest.mark.parametrize("name", BOTH_CHANNEL_TEMPLATES)
def test_html_email_is_a_complete_phone_friendly_document(content: Content, name: str) -> None:
    email = content.email(name, sample_context(channel="email"))
    assert email.html.startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in email.html
    title = re.search(r"<title>(.*?)</title>", email.html)
    assert title is not None
    assert html.unescape(title.group(1)) == email.subject
    assert 'name="viewport"' in email.html
    assert "max-width:560px" in email.html


@pytest.mark.parametrize("discreet", [False, True], ids=["plain", "discreet"])
def test_confirm_email_links_to_the_confirm_page(content: Content, discreet: bool) -> None:
    context = sample_context(discreet=discreet, channel="email")
    email = content.email("confirm", context)
    assert "confirm" in email.subject.lower()
    assert context["confirm_url"] in email.text
    assert f'href="{context["confirm_url"]}"' in email.html
    assert "Confirm" in email.html


def test_html_body_escapes_context_values_but_text_body_does_not(content: Content) -> None:
    email = content.email("welcome", email_context(postal_address="<script>x</script>"))
    assert "<script>" not in email.html
    assert "&lt;script&gt;x&lt;/script&gt;" in email.html
    assert "<script>x</script>" in email.text
