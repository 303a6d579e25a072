"""Crash safety with real processes (issue 5, point 3).

Each scenario seeds due nudges into a fresh PostgreSQL database, runs the real
`steady worker` (Celery prefork, two children) and `steady beat` against a Redis
of its own, sending through the real Twilio SDK to the sandbox, breaks something
(kill -9 a worker child at a crash point, restart or flush Redis, restart
PostgreSQL, make the provider fail for a while), waits until every message is
settled, and then reads the sandbox's own log against the database:

- no message went out twice (and no recipient got two);
- none is lost: every due message ends sent, or failed / expired with a reason,
  or `unknown` and then reconciled against the provider;
- the service recovered by itself: the worker and beat we started still run, and
  nobody touched the database or Redis to help it along.

Rows left `unknown` are settled by reconciliation (service/sending/reconcile.py, run by
every `steady.dispatch` task): found at the provider, they are `sent`; not found,
they are sent again, once.
"""
