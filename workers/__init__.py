"""Celery: the app and thin tasks that call `service` with ids."""
