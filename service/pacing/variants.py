"""Which template of a kind goes next.

Least recently used, unused ones first, ties broken by an offset from the
subscriber id so people see different orders. Activities also take the
person's chosen areas in turn. Pure: templates in, a template out.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from service.messages.catalog import (
    ACTIVITY_TEMPLATES,
    PATIENCE_TEMPLATES,
    RESTRAINT_TEMPLATES,
    TIP_TEMPLATES,
)


def _least_recently_used(candidates: Sequence[str], recent: Sequence[str], seed: int) -> str:
    """Unused first, then the one used longest ago; ``recent`` is oldest first. Ties go
    to the first in the candidates' order rotated by ``seed``."""
    last_use = {template: index for index, template in enumerate(recent)}
    count = len(candidates)
    offset = seed % count
    best, best_use = candidates[offset], last_use.get(candidates[offset], -1)
    for step in range(1, count):
        if best_use < 0:
            break  # unused: nothing comes before it
        template = candidates[(offset + step) % count]
        use = last_use.get(template, -1)
        if use < best_use:
            best, best_use = template, use
    return best


def _variant(candidates: Sequence[str], recent: Sequence[str], subscriber_id: int) -> str:
    used = [t for t in recent if t in candidates]
    return _least_recently_used(candidates, used, subscriber_id + len(used))


def choose_restraint(recent_templates: Sequence[str], subscriber_id: int) -> str:
    """Restraint template for a reply or a nudge; ``recent_templates`` oldest first."""
    return _variant(RESTRAINT_TEMPLATES, recent_templates, subscriber_id)


def choose_tip(recent_templates: Sequence[str], subscriber_id: int) -> str:
    """Tip template for the reply to THEM; ``recent_templates`` oldest first."""
    return _variant(TIP_TEMPLATES, recent_templates, subscriber_id)


def choose_patience(recent_templates: Sequence[str], subscriber_id: int) -> str:
    """Patience template; ``recent_templates`` oldest first."""
    return _variant(PATIENCE_TEMPLATES, recent_templates, subscriber_id)


def _activity_area(template: str) -> str | None:
    return _AREA_OF.get(template)


# Each activity template's area (the first area that lists it), looked up once a nudge.
_AREA_OF: dict[str, str] = {}
for _area, _templates in ACTIVITY_TEMPLATES.items():
    for _template in _templates:
        _AREA_OF.setdefault(_template, _area)


def choose_activity(
    chosen_areas: Sequence[str],
    used: Sequence[str],
    recently_used: Collection[str],
    subscriber_id: int,
) -> str | None:
    """The next of the person's areas in turn with a template not `recently_used`, or None.

    ``used`` is every activity template they had, oldest first.
    """
    areas = [a for a in chosen_areas if a in ACTIVITY_TEMPLATES]
    if not areas:
        return None
    last_area = _activity_area(used[-1]) if used else None
    first = areas.index(last_area) + 1 if last_area in areas else 0
    for step in range(len(areas)):
        area = areas[(first + step) % len(areas)]
        fresh = [t for t in ACTIVITY_TEMPLATES[area] if t not in recently_used]
        if fresh:
            return _variant(fresh, used, subscriber_id)
    return None
