"""Signup input found wrong by the acceptance pass (INTERFACE.md §2: 422 naming the field)."""

from __future__ import annotations

import pytest

from tests.support.world import Harness, make_settings


@pytest.mark.parametrize(
    ("number", "what"),
    [("+18005550199", "toll-free"), ("+19005550199", "premium-rate")],
)
def test_a_number_that_is_no_mobile_is_422_naming_phone(
    database_url: str, number: str, what: str
) -> None:
    harness = Harness(make_settings(database_url))
    response = harness.client.post("/subscribe", json={"phone": number, "consent": True})
    assert response.status_code == 422, what
    assert [d["field"] for d in response.json()["detail"]] == ["phone"]


def test_a_timezone_too_long_for_a_file_name_is_422_not_500(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    zone = "A" * 300  # past NAME_MAX (255), well within the body limit
    response = harness.client.post(
        "/subscribe", json={"phone": "+12125550142", "timezone": zone, "consent": True}
    )
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["detail"]] == ["timezone"]


def test_a_us_mobile_still_signs_up(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    response = harness.client.post("/subscribe", json={"phone": "(212) 555-0142", "consent": True})
    assert response.status_code == 202
