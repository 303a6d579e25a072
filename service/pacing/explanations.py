"""What WHY says: the reason behind each rule that picks a message (INTERFACE.md §3).

Keyed by the rule id a message carries (``Message.rule``); pacing (service.pacing.rules,
service.pacing.experiment) and the immediate replies choose the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

RULES: Mapping[str, str] = MappingProxyType(
    {
        "welcome": "You just joined, so Steady sent a welcome that explains what to expect.",
        "quiet_checkin": "Steady had not heard from you for a while, so it asked whether "
        "the messages still help and slowed down.",
        "restraint_after_me": "You logged reaching out, so Steady is reminding you to wait "
        "for them to make the next move.",
        "one_sided_restraint": "Most of your recent contact was started by you, so Steady is "
        "putting more reminders to hold back in the mix.",
        "early_patience": "Your separation is recent, so Steady is including reminders to "
        "give your partner time.",
        "activity_rotation": "Steady is suggesting something positive for yourself, taking "
        "your chosen areas in turn.",
        "restraint_mix": "This is the regular reminder that too little contact beats too much.",
        "patience_mix": "This is the regular reminder to give your partner time and not "
        "press for answers.",
        "rest_after_done": "You logged an activity recently, so Steady is letting it sink in "
        "before suggesting the next one.",
        "activity_rested": "Every activity idea in your chosen areas was used recently, so "
        "Steady sent a reminder instead of repeating one.",
        # Immediate replies (INTERFACE.md §3), chosen by choose_restraint / choose_tip.
        "me_reply_restraint": "You logged reaching out, so the reply carried a reminder to "
        "let them make the next move.",
        "them_reply_tip": "You logged that they got in touch, so the reply carried a tip: "
        "keep it light and short, end well, and let them ask the questions.",
        # Learning what helps (service.pacing.experiment): chance picked the kind.
        "experiment_restraint": "Steady varies its messages to learn what helps; this time "
        "chance picked a reminder to hold back.",
        "experiment_risky_hour": "Steady varies its messages to learn what helps; this time "
        "chance picked a reminder to hold back, timed before the hours you most often reach out.",
        "experiment_activity": "Steady varies its messages to learn what helps; this time "
        "chance picked an idea for something good for yourself.",
        "experiment_patience": "Steady varies its messages to learn what helps; this time "
        "chance picked a reminder to give it time.",
        "urge_reply": "You said you were about to get in touch, so the reply carried a "
        "reminder to wait.",
    }
)
