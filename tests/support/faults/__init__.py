"""Helpers for the crash-safety tests (`tests/system/faults/`).

Private servers the tests may break (a Redis and a PostgreSQL cluster of their
own, on free ports, so nothing shared is restarted or flushed), the real Steady
processes, seeding due nudges through the planner, and the one check every
scenario ends with: the sandbox's own log against the database, message by
message.
"""
