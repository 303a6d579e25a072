"""deploy/prometheus/alerts.yml: the signup alerts watch metrics `/metrics` really serves."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.world import Harness, make_settings

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef"


def signup_rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    [group] = [g for g in groups if g["name"] == "steady-signup"]
    return list(group["rules"])


def test_the_signup_group_alerts_on_the_budget_and_the_yes_rate() -> None:
    rules = {str(rule["alert"]): str(rule["expr"]) for rule in signup_rules()}
    budget = rules["SteadyConfirmationBudgetExhausted"]
    assert 'reason="confirmation_budget"' in budget
    rate = rules["SteadyLowConfirmationRate"]
    assert "steady_sms_confirmations_confirmed_total" in rate
    assert "steady_sms_confirmations_sent_total" in rate
    assert "by (country)" in rate


def test_every_metric_the_rules_name_is_served(sqlite_url: str) -> None:
    harness = Harness(
        make_settings(sqlite_url, STEADY_CONFIRMATIONS_PER_DAY="1", STEADY_ADMIN_TOKEN=ADMIN_TOKEN)
    )
    harness.client.post("/subscribe", json={"phone": "+12125550142", "consent": True})
    harness.client.post("/subscribe", json={"phone": "+12125550143", "consent": True})
    harness.tick()
    harness.text_in("+12125550142", "YES")
    harness.client.get("/admin/api/stats", headers={"Authorization": "Bearer wrong"})
    served = {
        sample.name
        for family in text_string_to_metric_families(harness.client.get("/metrics").text)
        for sample in family.samples
    }
    named = {
        name for rule in signup_rules() for name in re.findall(r"steady_\w+", str(rule["expr"]))
    }
    assert named
    assert named <= served, named - served
