"""`/admin/evaluation` and `/admin/api/evaluation`, and the opt-out on the preferences page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from service.learning.synthetic import SyntheticDesign, simulate
from service.storage.models import ContactLog, Subscriber
from service.storage.models_records import Decision
from service.tokens import Purpose, make_token
from tests.support.world import Harness, make_settings

ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
START = datetime(2026, 1, 5, tzinfo=UTC)


def harness_with_log(database_url: str, **overrides: str) -> Harness:
    """A synthetic trial written into the decision log, its ME contacts as logs."""
    harness = Harness(
        make_settings(database_url, STEADY_ADMIN_TOKEN=ADMIN_TOKEN, **overrides),
        now=START + timedelta(days=30),
    )
    trial = simulate(SyntheticDesign(people=25, days=14), seed=3)
    rows = trial.rows(START)
    with harness.runtime.sessions() as session:
        people = {}
        for index in range(25):
            person = Subscriber(timezone="UTC", created_at=START)
            session.add(person)
            session.flush()
            people[f"sim-{index}"] = person.id
        for row in rows:
            at = datetime.fromisoformat(row["at"])
            session.add(
                Decision(
                    at=at,
                    subscriber_id=people[row["subscriber_id"]],
                    available=row["available"],
                    unavailable_reason=row["unavailable_reason"],
                    options=row["options"],
                    probabilities=row["probabilities"],
                    chosen=row["chosen"],
                    policy="mrt-1",
                )
            )
            if row["outcome"] == 0:  # reached out within the 24 hours
                session.add(
                    ContactLog(
                        subscriber_id=people[row["subscriber_id"]],
                        initiator="me",
                        occurred_at=at + timedelta(hours=1),
                    )
                )
        session.commit()
    return harness


def test_the_api_needs_the_token_and_returns_evaluate_json(sqlite_url: str) -> None:
    harness = harness_with_log(sqlite_url)
    assert harness.client.get("/admin/api/evaluation").status_code == 401
    response = harness.client.get("/admin/api/evaluation", headers=BEARER)
    assert response.status_code == 200
    body = response.json()
    assert body["people"] == 25
    names = {(e["name"], e["scale"]) for e in body["effects"]}
    assert ("restraint", "risk_difference") in names
    assert ("restraint", "log_relative_risk") in names
    for effect in body["effects"]:
        assert set(effect) == {
            "name",
            "estimate",
            "ci_low",
            "ci_high",
            "scale",
            "people",
            "decisions",
        }
    assert body["by_days_since_signup"]


def test_the_page_draws_each_effect_and_its_change_with_days_since_signup(
    sqlite_url: str,
) -> None:
    harness = harness_with_log(sqlite_url)
    page = harness.client.get("/admin/evaluation", headers=BEARER)
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    text = page.text
    assert text.count("<svg") >= 2 + 4  # two scales, and one chart per option by days
    assert "restraint by days since signup" in text
    assert "95% interval" in text
    login = harness.client.get("/admin/evaluation")
    assert login.status_code == 200
    assert "<svg" not in login.text  # without a session: the login form


def test_without_an_admin_token_the_evaluation_does_not_exist(sqlite_url: str) -> None:
    harness = Harness(make_settings(sqlite_url))
    assert harness.client.get("/admin/evaluation").status_code == 404
    assert harness.client.get("/admin/api/evaluation").status_code == 404


def _preferences(harness: Harness) -> str:
    harness.client.post("/subscribe", json={"phone": "+12125550142", "consent": True})
    harness.tick()
    harness.text_in("+12125550142", "YES")
    secret = harness.settings.secret_key.get_secret_value()
    return f"/preferences/{make_token(secret, Purpose.PREFERENCES, 1)}"


def test_the_preferences_page_lets_a_person_opt_out_of_the_randomisation(
    sqlite_url: str,
) -> None:
    harness = Harness(make_settings(sqlite_url, STEADY_EXPERIMENT="on"))
    path = _preferences(harness)
    page = harness.client.get(path).text
    assert 'id="learning"' in page
    assert "checked" in page.split('id="learning"')[1].split(">")[0]
    saved = harness.client.post(path, data={"learning": "off"})
    assert saved.status_code == 200
    with harness.runtime.sessions() as session:
        assert session.scalars(select(Subscriber)).one().experiment_opt_out is True
    harness.client.post(path, data={"learning": ["off", "on"]})
    with harness.runtime.sessions() as session:
        assert session.scalars(select(Subscriber)).one().experiment_opt_out is False


def test_with_the_experiment_off_there_is_nothing_to_opt_out_of(sqlite_url: str) -> None:
    harness = Harness(make_settings(sqlite_url))
    assert 'id="learning"' not in harness.client.get(_preferences(harness)).text
