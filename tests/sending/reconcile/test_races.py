"""Two reconcilers at once: a row is settled by one of them, once."""

from __future__ import annotations

import threading
from datetime import timedelta

from service.devtools.sandbox.server import SandboxServer
from service.sending.reconcile import ReconcileReport, claim_unknown
from tests.sending.reconcile.rows import LATER, PHONE, SETTLE, only, reconcile, strand, subscribe
from tests.support.world import Harness

# --- Two reconcilers ------------------------------------------------------------------------


def test_a_row_held_by_one_reconciler_is_not_taken_by_another(
    harness: Harness, sandbox: SandboxServer
) -> None:
    subscribe(harness, phone=PHONE)
    confirm = only(harness, "confirm")
    strand(harness, confirm.id)
    harness.now += LATER
    with harness.runtime.sessions() as session:
        # The first reconciler claims it, then stalls (or dies) before settling it.
        hold = harness.now + timedelta(minutes=5)
        assert claim_unknown(session, harness.now, 10, SETTLE, hold) == [confirm.id]
        session.commit()

    assert reconcile(harness).claimed == 0
    harness.now += timedelta(minutes=5, seconds=1)
    assert reconcile(harness).settled == {confirm.id: "resent"}


def test_two_reconcilers_racing_for_one_row_settle_it_once(
    harness: Harness, sandbox: SandboxServer
) -> None:
    subscribe(harness, phone=PHONE)
    confirm = only(harness, "confirm")
    strand(harness, confirm.id)
    harness.now += LATER
    start = threading.Barrier(2)
    reports: list[ReconcileReport] = []

    def reconciler() -> None:
        start.wait()
        reports.append(reconcile(harness))

    threads = [threading.Thread(target=reconciler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(report.claimed for report in reports) == [0, 1]
    assert [r.settled for r in reports if r.claimed] == [{confirm.id: "resent"}]
    harness.tick()
    harness.tick(harness.now + timedelta(minutes=5))
    assert len(sandbox.messages()) == 1
