"""One process's working parts, built once from the settings and reused.

A Celery worker child, `steady run`, `steady tick` and the tests each build one
`Runtime`: the engine, one SDK client per provider (connection reuse matters
more than anything else for send speed, PERFORMANCE.md), the template cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from service.content import Content
from service.db import session_factory
from service.dispatch import Dispatcher, DispatchReport
from service.pacing import PacingPolicy
from service.planner import PlanReport, plan_due
from service.policy import pacing_policy
from service.providers.base import Channel, Provider, build_providers
from service.settings import Settings


@dataclass
class TickReport:
    plan: PlanReport
    dispatch: DispatchReport


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

    def tick(self, now: datetime, *, dry_run: bool = False) -> TickReport:
        """One planning and dispatch pass as of `now`."""
        plan = self.plan(now, dry_run=dry_run)
        if dry_run:
            return TickReport(plan=plan, dispatch=DispatchReport())
        return TickReport(plan=plan, dispatch=self.dispatcher.drain(now))
