"""The message catalogue: every template name Steady can send, grouped by kind.

Pure data. Pacing chooses names from here; `service.messages.content` renders them from
`templates/`. A test checks that every name below has its SMS and email files.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """What a message is for (INTERFACE.md §2, "Message kinds")."""

    CONFIRM = "confirm"
    WELCOME = "welcome"
    RESTRAINT = "restraint"
    TIP = "tip"
    ACTIVITY = "activity"
    PATIENCE = "patience"
    CHECKIN = "checkin"
    REPLY = "reply"
    SYSTEM = "system"
    SURVEY = "survey"  # the optional daily question (service.sending.decisions)
    OPERATOR = "operator"  # one SMS an operator wrote (INTERFACE.md §2, /admin/review)


# Kinds that answer something the person just did: they go when due, at any hour,
# and never count against cadence, caps or spacing (INTERFACE.md §4). An operator's
# reply is due at once or at the next opening of the person's window (people.review),
# and goes to flagged people too: they are who operators write to.
IMMEDIATE_KINDS = frozenset({Kind.CONFIRM, Kind.REPLY, Kind.SYSTEM, Kind.OPERATOR})

# Kinds the planner schedules on its own: the nudges.
NUDGE_KINDS = frozenset({Kind.WELCOME, Kind.RESTRAINT, Kind.ACTIVITY, Kind.PATIENCE, Kind.CHECKIN})

ACTIVITY_AREAS: tuple[str, ...] = (
    "learning",  # a class, a course, going back to school
    "friends",  # old friends, family, people who knew you before
    "fitness",  # the gym, a run, a team
    "outdoors",  # walks, parks, getting out of the house
    "creative",  # making something: music, cooking, a craft
    "community",  # volunteering, a club, a faith or neighbourhood group
)
DEFAULT_ACTIVITY_AREAS: tuple[str, ...] = ACTIVITY_AREAS

RESTRAINT_TEMPLATES: tuple[str, ...] = tuple(f"restraint_{i:02d}" for i in range(1, 13))
PATIENCE_TEMPLATES: tuple[str, ...] = tuple(f"patience_{i:02d}" for i in range(1, 7))
TIP_TEMPLATES: tuple[str, ...] = tuple(f"tip_{i:02d}" for i in range(1, 7))
ACTIVITY_TEMPLATES: dict[str, tuple[str, ...]] = {
    area: tuple(f"activity_{area}_{i}" for i in range(1, 4)) for area in ACTIVITY_AREAS
}
CONFIRM_TEMPLATE = "confirm"
WELCOME_TEMPLATE = "welcome"
CHECKIN_TEMPLATE = "checkin"
SURVEY_TEMPLATE = "survey"
OPERATOR_TEMPLATE = "operator"

# Replies to inbound texts (SMS only). The full grammar grows these.
REPLY_TEMPLATES: tuple[str, ...] = (
    "reply_help",  # HELP / INFO
    "reply_stopped",  # the one confirmation after STOP
    "reply_stopped_es",  # ... after a stop asked in Spanish (PARAR, BAJA, ...)
    "reply_stopped_fr",  # ... after a stop asked in French (ARRET, ...)
    "reply_help_es",  # AYUDA
    "reply_help_fr",  # AIDE
    "reply_resumed",  # START / YES / UNSTOP after a stop
    "reply_confirmed",  # YES while pending: welcome aboard
    "reply_guide",  # anything we do not understand
    "reply_logged_me",  # ME: confirmation; the restraint text follows it
    "reply_logged_them",  # THEM: confirmation; the tip text follows it
    "reply_done",  # DONE [activity]
    "reply_undo",  # UNDO removed the latest log
    "reply_undo_none",  # UNDO with nothing to remove
    "reply_paused",  # PAUSE [N]
    "reply_resumed_early",  # RESUME
    "reply_more",  # MORE
    "reply_less",  # LESS
    "reply_pace_max",  # MORE at the highest cadence
    "reply_pace_min",  # LESS at the lowest cadence
    "reply_why",  # WHY
    "reply_crisis",  # words of crisis or danger: the safety reply
    "reply_crisis_stopped",  # crisis words and STOP in one text
    "reply_crisis_stopped_es",  # ... the stop asked in Spanish
    "reply_crisis_stopped_fr",  # ... the stop asked in French
    "reply_burst",  # the one calm reply to several logs within an hour
    # Learning what helps (service.replies.learning).
    "reply_urge",  # URGE: opens the restraint message it carries
    "reply_stats",  # STATS: the person's own summary
    "reply_survey_yes",  # Y to the daily question: noted; a restraint follows it
    "reply_survey_no",  # N to the daily question
    "reply_zone",  # ZONE <place>: the zone and the local sending hours
    "reply_zone_unknown",  # ZONE with a place we cannot read: how to write it
)

# Names that exist as SMS and as email.
BOTH_CHANNEL_TEMPLATES: tuple[str, ...] = (
    CONFIRM_TEMPLATE,
    WELCOME_TEMPLATE,
    CHECKIN_TEMPLATE,
    *RESTRAINT_TEMPLATES,
    *PATIENCE_TEMPLATES,
    *TIP_TEMPLATES,
    *(name for names in ACTIVITY_TEMPLATES.values() for name in names),
)
SMS_ONLY_TEMPLATES: tuple[str, ...] = (*REPLY_TEMPLATES, SURVEY_TEMPLATE, OPERATOR_TEMPLATE)


def kind_of(template: str) -> Kind:
    """Return the kind a template name belongs to."""
    prefix = template.split("_", 1)[0]
    return Kind(prefix) if prefix != "reply" else Kind.REPLY
