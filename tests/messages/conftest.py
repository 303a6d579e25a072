"""The message content the template tests render, loaded once per module."""

from __future__ import annotations

import pytest

from service.messages.content import Content


@pytest.fixture(scope="module")
def content() -> Content:
    """One renderer for the module, as the service keeps one."""
    return Content()
