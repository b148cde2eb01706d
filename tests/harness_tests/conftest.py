"""Fixtures for the harness's own tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness import FakeRegistry


@pytest.fixture
def reg() -> Iterator[FakeRegistry]:
    """An entered FakeRegistry (its own moto mock, corrections installed)."""
    with FakeRegistry() as registry:
        yield registry
