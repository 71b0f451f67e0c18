"""Fixtures of the integration tests beyond the shared ones in tests/conftest.py."""

from __future__ import annotations

import pytest

from allegiance.kit.db import Database
from tests.integration.tiers_support import Tiers


@pytest.fixture
def t(db: Database) -> Tiers:
    """A tenant with a program for the tiers tests."""
    return Tiers(db)
