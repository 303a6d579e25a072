"""One process's working parts, built once from the settings and reused.

A Celery worker child, `steady run`, `steady tick` and the tests each build one
`Runtime`: the engine, one SDK client per provider (connection reuse matters
more than anything else for send speed, PERFORMANCE.md), the template cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from service.messages.content import Content
from service.pacing.policy import pacing_policy
from service.pacing.rules import PacingPolicy
from service.providers.base import Channel, Provider, build_providers
from service.sending.dispatch import Dispatcher, DispatchReport
from service.sending.planner import PlanReport, plan_due
from service.sending.reconcile import ReconcileReport, reconcile_unknown
from service.settings import Settings
from service.storage.db import session_factory

log = structlog.get_logger(__name__)


@dataclass
class TickReport:
    plan: PlanReport
    dispatch: DispatchReport
    reconcile: ReconcileReport = field(default_factory=ReconcileReport)


@dataclass
class Runtime:
    settings: Settings
    sessions: sessionmaker[Session]
    providers: dict[Channel, Provider]
    content: Content = field(default_factory=Content)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, providers: dict[Channel, Provider] | None = None
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

    def plan(self, now: datetime, *, dry_run: bool = False) -> PlanReport:
        return plan_due(
            self.sessions,
            self.policy,
            now,
            batch_size=self.settings.planner_batch_size,
            dry_run=dry_run,
        )

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

    def tick(self, now: datetime, *, dry_run: bool = False) -> TickReport:
        """One planning and dispatch pass as of `now`.

        Reconciliation comes before the sends, so a message it finds the provider
        never took goes out again in this same pass.
        """
        plan = self.plan(now, dry_run=dry_run)
        if dry_run:
            return TickReport(plan=plan, dispatch=DispatchReport())
        reconciled = self.reconcile(now)
        return TickReport(plan=plan, dispatch=self.dispatcher.drain(now), reconcile=reconciled)
