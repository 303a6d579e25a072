"""The decision log's export with outcomes (`steady decisions`), and `steady evaluate`
from the database and from a file, through the real CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import Result
from typer.testing import CliRunner

from service.cli.main import app
from service.learning.synthetic import SyntheticDesign, simulate
from service.reporting.decision_log import iter_rows
from service.settings import SECRET_FIELDS, Settings
from service.storage.db import session_factory
from service.storage.models import SURVEY_YES, ContactLog, InboundMessage, Message, Subscriber
from service.storage.models_records import Decision

NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 4, 6, 14, 0, tzinfo=UTC)  # 10:00 in New York, Monday
INTERFACE_FIELDS = [
    "at",
    "subscriber_id",
    "available",
    "unavailable_reason",
    "options",
    "probabilities",
    "chosen",
    "policy",
    "message_id",
]
runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for info in Settings.model_fields.values():
        for name in getattr(info.validation_alias, "choices", []):
            monkeypatch.delenv(str(name), raising=False)
    for name in (f"{secret}_FILE" for secret in SECRET_FIELDS.values()):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False)


def decision(subscriber_id: int, at: datetime, chosen: str = "none", **fields: Any) -> Decision:
    values: dict[str, Any] = {
        "at": at,
        "subscriber_id": subscriber_id,
        "available": True,
        "unavailable_reason": None,
        "options": ["none", "restraint"],
        "probabilities": {"none": 0.5, "restraint": 0.5},
        "chosen": chosen,
        "policy": "mrt-1",
        "message_id": None,
        "draw": 0.25,
    }
    values.update(fields)
    return Decision(**values)


def seed(url: str) -> int:
    """One person: decisions at T0, +1 day, +2 days, +3 days; what they did after each."""
    with session_factory(url)() as session:
        person = Subscriber(timezone="America/New_York", created_at=T0 - timedelta(days=2))
        session.add(person)
        session.flush()
        pid = person.id
        session.add_all(
            [
                decision(pid, T0),
                decision(pid, T0 + timedelta(days=1), "restraint", message_id=77),
                decision(pid, T0 + timedelta(days=2)),
                decision(pid, T0 + timedelta(days=3)),
                decision(
                    pid,
                    T0 + timedelta(days=4),
                    available=False,
                    unavailable_reason="cap",
                    options=["none"],
                    probabilities={"none": 1.0},
                    draw=None,
                ),
                # Reached out 23 h after the first decision: its outcome is 0.
                ContactLog(subscriber_id=pid, initiator="me", occurred_at=T0 + timedelta(hours=23)),
                # They texted (engagement) and reached out 25 h after the second: outcome 1.
                InboundMessage(
                    subscriber_id=pid, body="x", received_at=T0 + timedelta(days=1, hours=2)
                ),
                ContactLog(
                    subscriber_id=pid,
                    initiator="me",
                    occurred_at=T0 + timedelta(days=2, hours=1),
                ),
                # Y to the daily question at 19:00 on Thursday: its day (from midnight)
                # lies inside neither the third's nor the fourth's 24 hours.
                InboundMessage(
                    subscriber_id=pid,
                    body="Y",
                    command=SURVEY_YES,
                    received_at=(datetime(2026, 4, 9, 19, 0, tzinfo=NY)).astimezone(UTC),
                ),
                Message(
                    subscriber_id=pid,
                    channel="email",
                    kind="activity",
                    template="activity_learning_1",
                    rule="r",
                    status="delivered",
                    scheduled_for=T0,
                    clicked_at=T0 + timedelta(days=3, hours=5),
                ),
            ]
        )
        session.commit()
    return pid


def test_outcomes_count_contacts_and_daily_answers_in_the_next_24_hours(database_url: str) -> None:
    pid = seed(database_url)
    now = T0 + timedelta(days=4, hours=1)
    with session_factory(database_url)() as session:
        rows = list(iter_rows(session, now, chunk=2))  # chunks of two: the keyset paging
    assert [r["subscriber_id"] for r in rows] == [pid] * 5
    # 1st: ME at +23 h. 2nd: the ME at +25 h is outside its 24 h, inside the 3rd's.
    # 4th: Thursday's Y (00:00-19:00 New York) began before its 10:00 start, and ended
    # after the 3rd's 24 h: it may belong to either, so it counts for neither.
    # 5th: its 24 hours are not over.
    assert [r["outcome"] for r in rows] == [0, 1, 0, 1, None]
    assert [r["engaged"] for r in rows] == [0, 1, 0, 1, None]
    assert rows[0]["days_since_signup"] == 2.0
    assert rows[1]["message_id"] == 77
    assert rows[4]["available"] is False
    assert rows[4]["unavailable_reason"] == "cap"


def test_a_yes_whose_whole_day_falls_in_the_24_hours_counts_as_reaching_out(
    database_url: str,
) -> None:
    with session_factory(database_url)() as session:
        person = Subscriber(timezone="America/New_York", created_at=T0)
        session.add(person)
        session.flush()
        evening = datetime(2026, 4, 6, 22, 0, tzinfo=NY).astimezone(UTC)  # 22:00 Monday
        session.add(decision(person.id, evening))
        session.add(
            InboundMessage(
                subscriber_id=person.id,
                body="Y",
                command=SURVEY_YES,
                received_at=datetime(2026, 4, 7, 19, 0, tzinfo=NY).astimezone(UTC),
            )
        )
        session.commit()
        (row,) = iter_rows(session, evening + timedelta(days=2))
    assert row["outcome"] == 0


def test_steady_decisions_exports_interface_fields_as_json_and_csv(
    cli_env: pytest.MonkeyPatch, database_url: str
) -> None:
    cli_env.setenv("STEADY_DATABASE_URL", database_url)
    seed(database_url)
    result = invoke("decisions", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 5
    assert list(rows[0])[: len(INTERFACE_FIELDS)] == INTERFACE_FIELDS
    assert set(rows[0]) == {*INTERFACE_FIELDS, "days_since_signup", "outcome", "engaged"}
    assert rows[0]["options"] == ["none", "restraint"]
    assert rows[0]["probabilities"] == {"none": 0.5, "restraint": 0.5}
    since = invoke("decisions", "--json", "--since", (T0 + timedelta(days=3)).isoformat())
    assert len(json.loads(since.stdout)) == 2
    csv_out = invoke("decisions")
    assert csv_out.stdout.splitlines()[0].split(",")[: len(INTERFACE_FIELDS)] == INTERFACE_FIELDS
    assert len(csv_out.stdout.splitlines()) == 6
    bad = runner.invoke(app, ["decisions", "--since", "yesterday"])
    assert bad.exit_code == 2


def _trial_file(tmp_path: Path, people: int = 30) -> Path:
    trial = simulate(SyntheticDesign(people=people, days=14), seed=5)
    path = tmp_path / "log.json"
    path.write_text(json.dumps(trial.rows()))
    return path


def test_evaluate_reads_an_exported_log_and_estimates_each_option(
    cli_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = invoke("evaluate", "--input", str(_trial_file(tmp_path)), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    names = {(e["name"], e["scale"]) for e in out["effects"]}
    for option in ("restraint", "activity", "patience", "risky_hour"):
        assert (option, "risk_difference") in names
        assert (option, "log_relative_risk") in names
    for effect in out["effects"]:
        assert effect["ci_low"] <= effect["estimate"] <= effect["ci_high"]
        assert effect["people"] == 30
    table = invoke("evaluate", "--input", str(_trial_file(tmp_path)))
    assert "restraint" in table.stdout


def test_evaluate_estimates_a_candidate_policy_with_ipw_and_doubly_robust(
    cli_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = invoke(
        "evaluate", "--input", str(_trial_file(tmp_path)), "--json", "--policy", "no_nudges"
    )
    value = json.loads(result.stdout)["policies"]["no_nudges"]
    for method in ("logged", "ipw", "doubly_robust"):
        assert value[method]["ci_low"] <= value[method]["estimate"] <= value[method]["ci_high"]
    unknown = runner.invoke(app, ["evaluate", "--policy", "always_text"])
    assert unknown.exit_code == 2
    assert "always_text" in unknown.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        ('{"rows": []}', "JSON array"),
        (
            json.dumps([{"at": "2026-04-06T10:00:00", "subscriber_id": 1}]),
            "row 0: missing 'available'",
        ),
        (
            json.dumps(
                [
                    {
                        "at": "2026-04-06T10:00:00",
                        "subscriber_id": 1,
                        "available": True,
                        "unavailable_reason": None,
                        "options": ["none", "restraint"],
                        "probabilities": {"none": 0.7, "restraint": 0.7},
                        "chosen": "none",
                        "policy": "mrt-1",
                        "message_id": None,
                        "outcome": 1,
                    }
                ]
            ),
            "row 0: probabilities must lie in [0, 1] and sum to 1",
        ),
    ],
)
def test_a_bad_input_file_exits_2_naming_the_row(
    cli_env: pytest.MonkeyPatch, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = runner.invoke(app, ["evaluate", "--input", str(path)])
    assert result.exit_code == 2
    assert message in result.output.replace("\n", " ")


def test_evaluate_reads_the_database_and_says_why_nothing_is_estimated(
    cli_env: pytest.MonkeyPatch, database_url: str
) -> None:
    cli_env.setenv("STEADY_DATABASE_URL", database_url)
    seed(database_url)
    result = invoke("evaluate", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["effects"] == []
    assert out["decisions"] == 5
    assert out["available_decisions"] == 4
    assert any("too few" in note["reason"] for note in out["notes"])


def test_the_database_path_estimates_exactly_what_the_exported_file_does(
    database_url: str,
) -> None:
    from service.reporting.decision_log import load_rows
    from service.reporting.evaluation import evaluate, evaluate_database
    from tests.reporting.test_evaluation_scale import START, _fill

    _fill(database_url, people=40, days=10)
    now = START + timedelta(days=12)
    sessions = session_factory(database_url)
    with sessions() as session:
        exported = load_rows(session, now)
    from_file = evaluate(json.loads(json.dumps(exported)), ["no_nudges"])
    from_database = evaluate_database(sessions, now, ["no_nudges"])
    assert from_file["effects"]
    # The same numbers, up to the order people are summed in (ids as text in a file).
    assert json.loads(json.dumps(from_database), parse_float=lambda v: round(float(v), 9)) == (
        json.loads(json.dumps(from_file), parse_float=lambda v: round(float(v), 9))
    )
