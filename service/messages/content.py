"""Render Steady's messages from `templates/` (their SMS length: `service.messages.segments`).

SMS come from `templates/sms/<name>.txt`; email from
`templates/email/<name>/{subject.txt, body.txt, body.html}`, whose bodies extend the
shared `email/_layout.*` so the legally required footer is written once.

Every template sees `program`, `discreet`, `support_contact`, `safety_lines` (a list:
the fallback `STEADY_SAFETY_LINE`, or the lines of the person's country in replies)
and `frequency`; email templates also see `unsubscribe_url`, `preferences_url` and
`postal_address`, and the confirm email `confirm_url`; the operator's reply `body`.
Undefined variables are errors (StrictUndefined), never a blank in a message someone
reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from unidecode import unidecode

from service.messages.segments import gsm7_septets


def _templates_dir() -> Path:
    """The templates shipped inside the package (`service/templates`, which in the
    source tree links to the project's `templates/`): found the same way in a
    checkout, an editable install and an installed wheel."""
    root = resources.files("service") / "templates"
    if not isinstance(root, Path):  # e.g. a zipped install: Jinja reads files on disk
        raise RuntimeError(f"Steady's templates are not on the file system: {root}")
    return root


TEMPLATES_DIR: Path = _templates_dir()

# Typographic characters editors and phones produce, mapped to what a reader expects
# rather than to whatever transliteration would guess.
_TYPOGRAPHIC_TO_GSM = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u2032": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u2033": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2015": "-",
    "\u2212": "-",
    "\u2026": "...",
    "\u00a0": " ",
    "\u202f": " ",
    "\u2009": " ",
    "\t": " ",
}
_SPACES_WITHIN_LINE = re.compile(r"[ \t\u00a0]+")


SMS_CACHE_SIZE = 4096


class TemplateError(Exception):
    """A template is missing, malformed or needs a variable the context lacks."""


@dataclass(frozen=True)
class RenderedEmail:
    """One email, ready for a provider: a one-line subject and two bodies."""

    subject: str
    text: str
    html: str


class Content:
    """Renders named templates; cheap to call, since Jinja caches compiled templates."""

    def __init__(self, root: Path = TEMPLATES_DIR) -> None:
        """Build one environment for plain text and one, autoescaping, for HTML."""
        common: dict[str, Any] = {
            "loader": jinja2.FileSystemLoader(root),
            "undefined": jinja2.StrictUndefined,
            "keep_trailing_newline": False,
            "trim_blocks": True,
            "lstrip_blocks": True,
            # Templates ship with the release; skipping the mtime check per render
            # keeps Content fast when the dispatcher renders thousands a second.
            "auto_reload": False,
        }
        self._text = jinja2.Environment(autoescape=False, **common)  # noqa: S701 - SMS and plain-text email must not be HTML-escaped
        self._html = jinja2.Environment(autoescape=True, **common)
        # An SMS depends only on its template and a handful of settings-like values
        # (no links, no tokens), so the dispatcher's thousands a second are a few
        # dozen distinct texts: rendered once each (~20 µs of CPU a send saved).
        self._sms_cache: dict[tuple[Any, ...], str] = {}

    def sms(self, name: str, context: Mapping[str, Any]) -> str:
        """Render `sms/<name>.txt` as the exact text to send."""
        try:
            key = (name, *sorted(context.items()))
            hash(key)
        except TypeError:  # an unhashable value: render every time
            return self._render_sms(name, context)
        text = self._sms_cache.get(key)
        if text is None:
            text = self._render_sms(name, context)
            if len(self._sms_cache) < SMS_CACHE_SIZE:
                self._sms_cache[key] = text
        return text

    def _render_sms(self, name: str, context: Mapping[str, Any]) -> str:
        raw = _render(self._text, f"sms/{name}.txt", context)
        lines = (_SPACES_WITHIN_LINE.sub(" ", line).strip() for line in raw.splitlines())
        # Blank lines cost septets and read oddly on a phone; single breaks are kept
        # because templates use them on purpose (e.g. the HELP list).
        return normalise_gsm("\n".join(line for line in lines if line))

    def email(self, name: str, context: Mapping[str, Any]) -> RenderedEmail:
        """Render `email/<name>/*` into a subject, a plain-text body and an HTML body."""
        subject = " ".join(_render(self._text, f"email/{name}/subject.txt", context).split())
        text = _render(self._text, f"email/{name}/body.txt", context)
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(ln.rstrip() for ln in text.splitlines()))
        # The layout's <title> repeats the subject, so it is rendered once and passed on.
        html = _render(self._html, f"email/{name}/body.html", {**context, "subject": subject})
        return RenderedEmail(subject=subject, text=text.strip() + "\n", html=html.strip() + "\n")


def _render(env: jinja2.Environment, path: str, context: Mapping[str, Any]) -> str:
    """Render one template file, turning any Jinja failure into a TemplateError."""
    try:
        return env.get_template(path).render(context)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {path!r}: {type(exc).__name__}: {exc}") from exc


@lru_cache(maxsize=4096)
def _gsm_equivalent(char: str) -> str:
    """Return what one character becomes in GSM-7 (itself, a substitute, or "")."""
    if char in _TYPOGRAPHIC_TO_GSM:
        return _TYPOGRAPHIC_TO_GSM[char]
    if _is_gsm(char):
        return char
    if 0xD800 <= ord(char) <= 0xDFFF:
        return ""  # a lone surrogate has no meaning to transliterate
    return "".join(c for c in unidecode(char) if _is_gsm(c))


def _is_gsm(char: str) -> bool:
    """Tell whether a character is in the GSM-7 default alphabet or its extension."""
    return gsm7_septets(char) > 0


def normalise_gsm(text: str) -> str:
    """Return `text` using only GSM-7 characters, so an SMS never falls back to UCS-2.

    Typographic quotes, dashes, ellipses and odd spaces become their plain forms;
    other characters are transliterated with unidecode, and dropped if that fails.
    Idempotent: every character it emits is GSM-7 and maps to itself.
    """
    return "".join(_gsm_equivalent(char) for char in text)


def sample_context(*, discreet: bool = False, channel: str = "sms") -> dict[str, Any]:
    """Return realistic values for every template variable, for tests and demos."""
    context: dict[str, Any] = {
        "program": "Steady",
        "discreet": discreet,
        "support_contact": "help@steady.example",
        "safety_lines": ["Call or text 988, the Suicide & Crisis Lifeline (24/7)."],
        "frequency": "up to 1 msg/day",
        "frequency_es": "hasta 1 mensaje al día",
        "frequency_fr": "jusqu'à 1 message par jour",
        "experiment": True,
        "body": "Thanks for writing. If today is hard, the lines in our HELP reply are open.",
    }
    if channel == "email":
        context |= {
            "unsubscribe_url": "https://steady.example/u/3f9c2a7e",
            "preferences_url": "https://steady.example/p/3f9c2a7e",
            "postal_address": "Steady, 548 Market St #12345, San Francisco, CA 94104, USA",
            "confirm_url": "https://steady.example/confirm/3f9c2a7e",
        }
    elif channel != "sms":
        raise ValueError(f"unknown channel {channel!r}; expected 'sms' or 'email'")
    return context
