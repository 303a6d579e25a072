"""Shared test helpers: settings and harness, real processes, faults, the browser."""
