"""Steady: scheduled nudges for people going through a marital separation."""
