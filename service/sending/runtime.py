"""One process's working parts, built once from the settings and reused.

A Celery worker child, `steady run`, `steady tick` and the tests each build one
`Runtime`: the engine, one SDK client per provider (connection reuse matters
more than anything else for send speed, PERFORMANCE.md), the template cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker

from service.channels import ChannelKind
from service.messages.content import Content
from service.pacing.policy import pacing_policy
from service.pacing.rules import PacingPolicy
from service.providers.base import Provider
from service.providers.registry import build_providers
from service.reporting import tallies
from service.sending import claims
from service.sending.decisions import Experiment, plan_decision_points
from service.sending.dispatch import Dispatcher, DispatchReport
from service.sending.planner import PlanReport, plan_due
from service.sending.reconcile import ReconcileReport, reconcile_unknown
from service.settings import Settings
from service.storage.db import session_factory

log = structlog.get_logger(__name__)

# `steady tick --dry-run` lists at most this many already-scheduled due rows.
DRY_RUN_DUE_LIMIT = 1000


@dataclass
class TickReport:
    plan: PlanReport
    dispatch: DispatchReport
    # --dry-run: the rows already scheduled that the pass would have sent.
    due: list[Any] = field(default_factory=list)

    @property
    def reconcile(self) -> ReconcileReport:
        return self.dispatch.reconcile


@dataclass
class Runtime:
    settings: Settings
    sessions: sessionmaker[Session]
    providers: dict[ChannelKind, Provider]
    content: Content = field(default_factory=Content)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, providers: dict[ChannelKind, Provider] | None = None
    ) -> Runtime:
        return cls(
            settings=settings,
            sessions=session_factory(settings.database_url),
            providers=providers if providers is not None else build_providers(settings),
        )

    @property
    def policy(self) -> PacingPolicy:
        return pacing_policy(self.settings)

    @property
    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.settings, self.sessions, self.providers, self.content)

    @property
    def experiment(self) -> Experiment | None:
        """STEADY_EXPERIMENT: None while off (the v1 planner), else the grid's settings."""
        if self.settings.experiment != "on":
            return None
        return Experiment.from_secret(
            self.settings.secret_key.get_secret_value(),
            survey=self.settings.daily_survey == "on",
        )

    def plan(self, now: datetime, *, dry_run: bool = False) -> PlanReport:
        experiment = self.experiment
        if experiment is not None:
            report: PlanReport = plan_decision_points(
                self.sessions,
                self.policy,
                now,
                experiment,
                batch_size=self.settings.planner_batch_size,
                dry_run=dry_run,
            )
        else:
            report = plan_due(
                self.sessions,
                self.policy,
                now,
                batch_size=self.settings.planner_batch_size,
                dry_run=dry_run,
            )
        if not dry_run:
            # The figures' running tallies take in their pending changes on the primary
            # every pass, so /metrics and the admin read few rows, on a replica too.
            with self.sessions.begin() as session:
                tallies.fold(session)
        return report

    def reconcile(self, now: datetime) -> ReconcileReport:
        """Settle one batch of `unknown` messages against their providers.

        Never stops a dispatch pass: a failure is logged, and the rows it held
        are taken again once their hold runs out.
        """
        try:
            return reconcile_unknown(
                self.sessions, self.providers, self.settings, self.content, now
            )
        except Exception as exc:
            # The type only: SDK and driver messages can carry URLs with addresses.
            log.error("reconcile_failed", error=type(exc).__name__)
            return ReconcileReport()

    def dispatch(
        self,
        now: datetime,
        *,
        clock: Callable[[], datetime] | None = None,
        time_budget: float | None = None,
    ) -> DispatchReport:
        """Housekeeping, reconciliation, then batches until nothing is due.

        Reconciliation comes before the sends, so a message it finds the provider
        never took goes out again in this same pass. `clock` gives each batch its
        own "now" (a long-running worker); without it every batch uses `now`
        (`steady tick --now`). Past `time_budget` seconds the pass stops and
        reports `more`, so one busy worker cannot starve beat's other work.
        """
        dispatcher = self.dispatcher
        report = DispatchReport()
        report.expired, report.unknown = dispatcher.housekeeping(now)
        report.reconcile = self.reconcile(now)
        started = time.monotonic()
        while True:
            outcomes = dispatcher.run_batch(clock() if clock else now)
            report.outcomes.extend(outcomes)
            if len(outcomes) < self.settings.dispatch_batch_size:
                return report
            if time_budget is not None and time.monotonic() - started >= time_budget:
                report.more = True
                return report

    def tick(self, now: datetime, *, dry_run: bool = False) -> TickReport:
        """One pass as of `now`: plan, then dispatch (the Celery tasks, `steady tick`
        and `steady run` all come here; ARCHITECTURE.md "One pass, written once")."""
        plan = self.plan(now, dry_run=dry_run)
        if dry_run:
            with self.sessions() as session:
                due = claims.peek_due(session, now, DRY_RUN_DUE_LIMIT)
            return TickReport(plan=plan, dispatch=DispatchReport(), due=due)
        return TickReport(plan=plan, dispatch=self.dispatch(now))
