"""Every message in the catalogue renders, fits its channel and keeps Steady's rules."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.messages.catalog import BOTH_CHANNEL_TEMPLATES, SMS_ONLY_TEMPLATES
from service.messages.content import (
    TEMPLATES_DIR,
    Content,
    RenderedEmail,
    TemplateError,
    normalise_gsm,
    sample_context,
)
from service.messages.segments import count_segments

ALL_SMS = BOTH_CHANNEL_TEMPLATES + SMS_ONLY_TEMPLATES
# Texts the planner schedules or sends as one-liners; only HELP and the crisis replies,
# which carry the person's safety lines, may run longer.
LONGER_SMS = (
    "reply_help",
    "reply_help_es",
    "reply_help_fr",
    "reply_crisis",
    "reply_crisis_stopped",
    "reply_crisis_stopped_es",
    "reply_crisis_stopped_fr",
)
TWO_SEGMENT_SMS = tuple(name for name in ALL_SMS if name not in LONGER_SMS)
# Nudges must stay neutral all the way through in discreet mode; confirm and the
# replies must name the programme (CTIA), just not on the lock screen.
DISCREET_NEUTRAL_SMS = tuple(name for name in BOTH_CHANNEL_TEMPLATES if name != "confirm")
LOCK_SCREEN_CHARS = 40
MAX_NUDGE_SEGMENTS = 2
MAX_HELP_SEGMENTS = 4

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

EMAIL_FILES = ("subject.txt", "body.txt", "body.html")


@pytest.fixture(scope="module")
def content() -> Content:
    """One renderer for the module, as the service keeps one."""
    return Content()


def email_context(**overrides: Any) -> dict[str, Any]:
    """Sample email context with some values replaced."""
    return {**sample_context(channel="email"), **overrides}


def template_files() -> set[Path]:
    """All files under templates/, relative to it."""
    return {p.relative_to(TEMPLATES_DIR) for p in TEMPLATES_DIR.rglob("*") if p.is_file()}


# --- the catalogue and the files agree --------------------------------------------


def test_every_catalogue_name_has_its_template_files() -> None:
    files = template_files()
    missing = [f"sms/{n}.txt" for n in ALL_SMS if Path(f"sms/{n}.txt") not in files]
    missing += [
        f"email/{n}/{f}"
        for n in BOTH_CHANNEL_TEMPLATES
        for f in EMAIL_FILES
        if Path(f"email/{n}/{f}") not in files
    ]
    assert missing == []


def test_no_template_file_exists_outside_the_catalogue() -> None:
    expected = {Path(f"sms/{n}.txt") for n in ALL_SMS}
    expected |= {Path(f"email/{n}/{f}") for n in BOTH_CHANNEL_TEMPLATES for f in EMAIL_FILES}
    stray = sorted(str(p) for p in template_files() - expected if not p.name.startswith("_"))
    assert stray == []


# --- SMS --------------------------------------------------------------------------


@pytest.mark.parametrize("discreet", [False, True], ids=["plain", "discreet"])
@pytest.mark.parametrize("name", TWO_SEGMENT_SMS)
def test_sms_is_gsm7_and_fits_two_segments(content: Content, name: str, discreet: bool) -> None:
    text = content.sms(name, sample_context(discreet=discreet))
    assert text
    text.encode("gsm03.38")  # raises if a character would force UCS-2
    assert normalise_gsm(text) == text
    assert count_segments(text) <= MAX_NUDGE_SEGMENTS, text


@pytest.mark.parametrize("discreet", [False, True], ids=["plain", "discreet"])
def test_reply_help_lists_commands_and_fits_four_segments(content: Content, discreet: bool) -> None:
    context = sample_context(discreet=discreet)
    text = content.sms("reply_help", context)
    for command in ("ME", "THEM", "DONE", "PAUSE", "MORE", "LESS", "WHY", "STOP"):
        assert re.search(rf"\b{command}\b", text), command
    assert context["program"] in text
    assert context["frequency"] in text
    assert context["support_contact"] in text
    assert context["safety_lines"][0] in text
    assert count_segments(text) <= MAX_HELP_SEGMENTS


def test_reply_help_leaves_out_support_lines_that_are_not_set(content: Content) -> None:
    text = content.sms(
        "reply_help", {**sample_context(), "support_contact": None, "safety_lines": []}
    )
    assert "None" not in text
    assert "support now" not in text
    assert not text.endswith(":")


@pytest.mark.parametrize("discreet", [False, True], ids=["plain", "discreet"])
def test_confirm_sms_carries_the_carrier_required_disclosures(
    content: Content, discreet: bool
) -> None:
    context = sample_context(discreet=discreet)
    text = content.sms("confirm", context)
    assert "Steady" in text
    assert context["frequency"] in text
    assert "Msg & data rates may apply" in text
    for word in ("YES", "HELP", "STOP"):
        assert re.search(rf"\b{word}\b", text), word


@pytest.mark.parametrize("name", ALL_SMS)
def test_plain_sms_names_the_sender_first(content: Content, name: str) -> None:
    assert content.sms(name, sample_context()).startswith("Steady: ")


@pytest.mark.parametrize("name", ALL_SMS)
def test_discreet_sms_shows_no_sensitive_word_on_the_lock_screen(
    content: Content, name: str
) -> None:
    text = content.sms(name, sample_context(discreet=True))
    assert SENSITIVE.search(text[:LOCK_SCREEN_CHARS]) is None, text


@pytest.mark.parametrize("name", DISCREET_NEUTRAL_SMS)
def test_discreet_nudge_sms_is_neutral_throughout(content: Content, name: str) -> None:
    text = content.sms(name, sample_context(discreet=True))
    assert SENSITIVE.search(text) is None, text


@pytest.mark.parametrize(
    "text",
    ["Steady: hi", "Your partner", "your ex-", "after the separation", "reach out less"],
)
def test_sensitive_word_check_catches_revealing_openings(text: str) -> None:
    assert SENSITIVE.search(text)


def test_sensitive_word_check_ignores_words_that_merely_contain_them() -> None:
    assert SENSITIVE.search("Next text: steadier, expect, exercise") is None


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


# --- errors -----------------------------------------------------------------------


def test_missing_sms_variable_raises_template_error_naming_the_template(content: Content) -> None:
    context = sample_context()
    del context["frequency"]
    with pytest.raises(TemplateError, match="confirm"):
        content.sms("confirm", context)


def test_missing_discreet_flag_raises_rather_than_guessing(content: Content) -> None:
    context = sample_context()
    del context["discreet"]
    with pytest.raises(TemplateError, match="restraint_01"):
        content.sms("restraint_01", context)


def test_missing_email_variable_raises_template_error_naming_the_template(
    content: Content,
) -> None:
    context = sample_context(channel="email")
    del context["confirm_url"]
    with pytest.raises(TemplateError, match="confirm"):
        content.email("confirm", context)


def test_missing_footer_variable_raises_for_any_email(content: Content) -> None:
    context = sample_context(channel="email")
    del context["postal_address"]
    with pytest.raises(TemplateError, match="tip_01"):
        content.email("tip_01", context)


def test_unknown_template_raises_template_error(content: Content) -> None:
    with pytest.raises(TemplateError, match="no_such_message"):
        content.sms("no_such_message", sample_context())


def test_template_syntax_error_raises_template_error(tmp_path: Path) -> None:
    (tmp_path / "sms").mkdir()
    (tmp_path / "sms" / "broken.txt").write_text("{% if discreet %}unclosed")
    with pytest.raises(TemplateError, match="broken"):
        Content(tmp_path).sms("broken", sample_context())


def test_sms_collapses_spaces_and_blank_lines_but_keeps_line_breaks(tmp_path: Path) -> None:
    (tmp_path / "sms").mkdir()
    (tmp_path / "sms" / "spacing.txt").write_text(
        "\n  Hello   there,\t{{ program }}  \n\n\n  second “line” – ok…  \n\n"
    )
    assert Content(tmp_path).sms("spacing", sample_context()) == (
        'Hello there, Steady\nsecond "line" - ok...'
    )


def test_sample_context_rejects_an_unknown_channel() -> None:
    with pytest.raises(ValueError, match="fax"):
        sample_context(channel="fax")


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


# --- GSM-7 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("it’s ‘fine’", "it's 'fine'"),
        ("“quoted”", '"quoted"'),
        ("wait – then — go", "wait - then - go"),
        ("later…", "later..."),
        ("a\u00a0b", "a b"),
        ("façade", "facade"),  # lowercase ç is not GSM-7
        ("café €5 {ok}", "café €5 {ok}"),  # é, € and braces are GSM-7 (€ and { via escape)
        ("ok 🙂", "ok "),  # nothing to transliterate to: dropped
        ("a\x1bb", "ab"),  # a stray escape would garble the next character
    ],
)
def test_normalise_gsm_maps_typography_and_transliterates(raw: str, expected: str) -> None:
    assert normalise_gsm(raw) == expected


TYPOGRAPHY = st.sampled_from("‘’“”–—…\u00a0\t\x1bçøŁ€{}[]~^|\\éñß🙂中")


@given(st.text(alphabet=st.one_of(st.characters(), TYPOGRAPHY)))
def test_normalise_gsm_output_is_gsm7_and_idempotent(text: str) -> None:
    once = normalise_gsm(text)
    once.encode("gsm03.38")
    assert normalise_gsm(once) == once


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # 160 septets: each € is escape + code
        ("€" * 81, 2),
        ("a" * 159 + "{", 2),  # 161 septets
        ("a" * 158 + "^", 1),
        ("ç" * 70, 1),  # not GSM-7, so UCS-2
        ("ç" * 71, 2),
        ("ç" * 134, 2),
        ("ç" * 135, 3),
        ("🙂" * 35, 1),  # two UTF-16 code units each
        ("🙂" * 36, 2),
    ],
)
def test_sms_segments_counts_gsm7_septets_and_ucs2_units(text: str, segments: int) -> None:
    assert count_segments(text) == segments
