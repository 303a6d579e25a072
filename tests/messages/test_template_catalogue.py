"""The catalogue and the template files agree, and rendering errors name the template."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.messages.catalog import BOTH_CHANNEL_TEMPLATES
from service.messages.content import TEMPLATES_DIR, Content, TemplateError, sample_context
from tests.messages.template_rules import ALL_SMS

EMAIL_FILES = ("subject.txt", "body.txt", "body.html")


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
