"""Pacing rules, worked examples: which nudge a subscriber gets, and its variants."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, timedelta
from itertools import pairwise

from service.messages.catalog import (
    ACTIVITY_TEMPLATES,
    PATIENCE_TEMPLATES,
    RESTRAINT_TEMPLATES,
    TIP_TEMPLATES,
    Kind,
)
from service.pacing.explanations import RULES
from service.pacing.rules import ContactEntry, effective_cadence, plan_next
from service.pacing.variants import choose_restraint, choose_tip
from tests.pacing.builders import NEW_YORK, POLICY, local, sent, simulate, subscriber, utc

# --- who gets what ----------------------------------------------------------------


def test_first_nudge_is_the_welcome() -> None:
    plan = plan_next(subscriber(welcomed=False), utc("2025-06-02T15:00:00"))
    assert (plan.kind, plan.template, plan.rule) == (Kind.WELCOME, "welcome", "welcome")


def test_scheduled_welcome_is_not_planned_twice() -> None:
    now = utc("2025-06-02T15:00:00")
    state = subscriber(welcomed=False, recent_nudges=(sent("welcome", now),))
    assert plan_next(state, now).kind == Kind.ACTIVITY


def test_me_log_makes_next_nudge_restraint() -> None:
    now = utc("2025-06-02T15:00:00")
    # The last nudge was a restraint reminder, so the mix alone would pick an activity.
    state = subscriber(
        recent_nudges=(sent("restraint_01", now - timedelta(days=1)),),
        contacts=(ContactEntry("me", now - timedelta(hours=1)),),
    )
    plan = plan_next(state, now)
    assert plan.kind == Kind.RESTRAINT
    assert plan.rule == "restraint_after_me"
    assert plan.template in RESTRAINT_TEMPLATES
    assert plan.template != "restraint_01"
    assert plan_next(replace(state, contacts=()), now).kind == Kind.ACTIVITY


def test_restraint_after_me_holds_activities_for_72_hours() -> None:
    start = utc("2025-06-02T15:00:00")
    state = subscriber(cadence_per_week=21, contacts=(ContactEntry("me", start),))
    plans = simulate(state, start, 12)
    held = [p for _, p in plans if p.scheduled_for - start < timedelta(hours=72)]
    after = [p for _, p in plans if p.scheduled_for - start >= timedelta(hours=72)]
    assert held
    assert after
    assert all(p.rule == "restraint_after_me" for p in held)
    assert not any(p.rule == "restraint_after_me" for p in after)


def test_them_log_ends_the_restraint_hold() -> None:
    now = utc("2025-06-02T15:00:00")
    state = subscriber(
        recent_nudges=(sent("restraint_01", now - timedelta(days=1)),),
        contacts=(
            ContactEntry("me", now - timedelta(hours=3)),
            ContactEntry("them", now - timedelta(hours=2)),
        ),
    )
    assert plan_next(state, now).rule == "activity_rotation"


def test_one_sided_contact_makes_mix_restraint_heavy() -> None:
    start = utc("2025-06-02T15:00:00")
    # Four of my contacts to their one, the latest four days ago (past the ME hold).
    contacts = (
        *(ContactEntry("me", start - timedelta(days=d)) for d in (4, 5, 6, 7)),
        ContactEntry("them", start - timedelta(days=8)),
    )
    plans = simulate(subscriber(contacts=contacts), start, 7)
    assert sum(p.kind == Kind.RESTRAINT for _, p in plans) * 3 >= 2 * len(plans)
    assert {p.rule for _, p in plans} >= {"one_sided_restraint", "activity_rotation"}


def test_balanced_contact_keeps_the_normal_mix() -> None:
    start = utc("2025-06-02T15:00:00")
    contacts = tuple(ContactEntry("me", start - timedelta(days=d)) for d in (4, 5, 6)) + tuple(
        ContactEntry("them", start - timedelta(days=d)) for d in (3.5, 4.5)
    )
    kinds = [p.kind for _, p in simulate(subscriber(contacts=contacts), start, 8)]
    assert kinds == [Kind.ACTIVITY, Kind.RESTRAINT, Kind.ACTIVITY, Kind.PATIENCE] * 2


def test_patience_in_first_two_weeks_after_separation() -> None:
    start = local("2025-06-02T09:00:00", NEW_YORK)
    state = subscriber(separation_date=date(2025, 5, 31))
    early = [p for _, p in simulate(state, start, 8)]
    assert [p.kind for p in early[::2]] == [Kind.PATIENCE] * 4
    assert all(p.rule == "early_patience" for p in early[::2])
    assert all(p.template in PATIENCE_TEMPLATES for p in early[::2])
    later = [p for _, p in simulate(state, start + timedelta(days=13), 8)]
    assert not any(p.rule == "early_patience" for p in later)


def test_activity_templates_do_not_repeat_within_14_days() -> None:
    start = local("2025-06-02T08:00:00", NEW_YORK)
    plans = [p for _, p in simulate(subscriber(cadence_per_week=21), start, 60)]
    assert plans[-1].scheduled_for - start >= timedelta(days=14)
    activities = [p for p in plans if p.kind == Kind.ACTIVITY]
    assert len(activities) >= 10
    for i, first in enumerate(activities):
        for second in activities[i + 1 :]:
            if first.template == second.template:
                assert second.scheduled_for - first.scheduled_for >= timedelta(days=14)


def test_activities_take_the_chosen_areas_in_turn() -> None:
    start = local("2025-06-02T08:00:00", NEW_YORK)
    state = subscriber(activity_areas=("fitness", "friends", "learning"))
    plans = [p for _, p in simulate(state, start, 12)]
    areas = [p.template.split("_")[1] for p in plans if p.kind == Kind.ACTIVITY]
    assert areas == ["fitness", "friends", "learning", "fitness", "friends", "learning"]


def test_few_areas_fall_back_to_reminders_once_every_idea_was_used() -> None:
    start = local("2025-06-02T08:00:00", NEW_YORK)
    state = subscriber(cadence_per_week=21, activity_areas=("fitness",))
    plans = [p for _, p in simulate(state, start, 40)]
    fortnight = [p for p in plans if p.scheduled_for - start < timedelta(days=14)]
    activities = [p.template for p in fortnight if p.kind == Kind.ACTIVITY]
    assert sorted(activities) == list(ACTIVITY_TEMPLATES["fitness"])
    assert "activity_rested" in {p.rule for p in plans}


def test_done_gets_a_rest_before_the_next_suggestion() -> None:
    now = utc("2025-06-02T15:00:00")
    state = subscriber(
        recent_nudges=(sent("restraint_03", now - timedelta(days=1)),),
        last_done_at=now - timedelta(hours=2),
    )
    plan = plan_next(state, now)
    assert plan.rule == "rest_after_done"
    assert plan.kind == Kind.PATIENCE
    rested = replace(state, last_done_at=now - timedelta(hours=25))
    assert plan_next(rested, now).kind == Kind.ACTIVITY


def test_quiet_14_days_sends_one_checkin_and_halves_cadence() -> None:
    start = utc("2025-06-02T15:00:00")
    history = tuple(sent("restraint_01", start - timedelta(days=d)) for d in (5, 3, 1))
    state = subscriber(
        active_since=start - timedelta(days=40), last_engaged_at=start - timedelta(days=15)
    )
    state = replace(state, recent_nudges=history)
    assert effective_cadence(state, start, POLICY) == 3.5
    assert effective_cadence(replace(state, last_engaged_at=start), start, POLICY) == 7
    plans = simulate(state, start, 12)
    assert plans[0][1].rule == "quiet_checkin"
    assert plans[0][1].template == "checkin"
    assert [p.kind for _, p in plans].count(Kind.CHECKIN) == 1
    for (_, earlier), (_, later) in pairwise(plans):
        assert later.scheduled_for - earlier.scheduled_for >= timedelta(days=2)


def test_new_subscriber_is_not_quiet_before_14_days() -> None:
    now = utc("2025-06-02T15:00:00")
    state = subscriber(active_since=now - timedelta(days=13))
    assert effective_cadence(state, now, POLICY) == 7
    assert plan_next(state, now).rule != "quiet_checkin"


# --- variants and rules -----------------------------------------------------------------


def test_tips_cycle_through_every_variant_before_repeating() -> None:
    used: list[str] = []
    for _ in range(len(TIP_TEMPLATES)):
        used.append(choose_tip(used, subscriber_id=7))
    assert sorted(used) == sorted(TIP_TEMPLATES)
    assert choose_tip(used, subscriber_id=7) == used[0]


def test_restraint_reply_picks_the_least_recently_used() -> None:
    all_but_last = [t for t in RESTRAINT_TEMPLATES if t != "restraint_05"]
    assert choose_restraint(all_but_last, subscriber_id=3) == "restraint_05"
    assert choose_restraint([*RESTRAINT_TEMPLATES[1:], "restraint_01"], 3) == "restraint_02"


def test_different_subscribers_start_at_different_variants() -> None:
    firsts = {choose_restraint([], subscriber_id=n) for n in range(12)}
    assert firsts == set(RESTRAINT_TEMPLATES)


def test_every_rule_has_one_plain_sentence() -> None:
    for rule, sentence in RULES.items():
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", rule)
        assert sentence.endswith(".")
        assert sentence.count(". ") == 0 or rule == "them_reply_tip"
