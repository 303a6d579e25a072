"""Inbound texts found wrong by the acceptance pass: a signed webhook never gets a 5xx."""

from __future__ import annotations

import pytest

from tests.support.world import Harness, make_settings


@pytest.mark.parametrize("sender", ["garbage", "12345", "whatsapp:+12125550142"])
def test_join_from_a_sender_that_is_no_e164_number_answers_200(
    database_url: str, sender: str
) -> None:
    harness = Harness(make_settings(database_url))
    response = harness.text_in(sender, "JOIN")
    assert response.status_code == 200
    assert response.text.startswith("<?xml")
