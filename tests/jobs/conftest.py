"""Helpers for the jobs tests: submit as a marketing user with sensible defaults."""

import datetime as dt

import pytest

from jobs import services
from tests import factories

# A Wednesday noon in UTC: outside the Nightly off-peak window (23:00-07:00 Berlin).
NOON = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def submit(world):
    """``submit(**overrides)`` submits a lipsync-render batch job for marketing as its
    manager at NOON and returns the job."""

    def _submit(**overrides):
        arguments = {
            "department": world.marketing,
            "kind": world.lipsync,
            "params": {"seconds": 1},
            "tier": "batch",
            "user": world.user("manager"),
            "now": NOON,
        }
        arguments.update(overrides)
        return services.job_submit(**arguments).job

    return _submit


def quota(world, kind: str, limit, enforcement: str = "hard_queue", **fields):
    return factories.QuotaFactory(
        department=world.marketing, kind=kind, limit=limit, enforcement=enforcement, **fields
    )
