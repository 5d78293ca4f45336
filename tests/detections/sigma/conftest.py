"""Fixtures of the Sigma tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from exhunt.api import ScanOptions, event_filter
from exhunt.artifacts import evtx_chunks


@pytest.fixture
def default_literals() -> Iterator[tuple[str, ...]]:
    """The default scan's EVTX literals, configured for the chunk and record filters."""
    literals = event_filter(ScanOptions()).literals
    assert literals is not None
    evtx_chunks.configure(literals)
    yield literals
    evtx_chunks.configure(None)
