import datetime as dt
from decimal import Decimal

import pytest

from tests import factories

UTC = dt.UTC


def hour(day: int, hour_of_day: int, *, month: int = 3, year: int = 2026) -> dt.datetime:
    return dt.datetime(year, month, day, hour_of_day, tzinfo=UTC)


class Ledger:
    """Writes billing-source ledger rows (one run per call) for the tests."""

    def __init__(self):
        # The metering migration installs it; a transactional test before this one may
        # have flushed it away.
        self.source = factories.MetricSourceFactory(name="allocation", is_billing=True)
        assert self.source.is_billing

    def add(self, *, at: dt.datetime, gpu_hours, department=None, gpu_class=None, namespace=None):
        return factories.UsageRecordFactory(
            source=self.source,
            department=department,
            gpu_class=gpu_class,
            hour_start=at,
            gpu_hours=Decimal(str(gpu_hours)),
            **({"namespace": namespace} if namespace else {}),
        )


@pytest.fixture
def ledger(db) -> Ledger:
    return Ledger()


@pytest.fixture
def fleet(db):
    """A100 (2 GPUs) at 2.00 EUR per GPU-hour since 2020, and two departments."""
    a100 = factories.GpuClassFactory(slug="a100", name="A100", capacity_gpus=2)
    marketing = factories.DepartmentFactory(slug="marketing", name="Marketing")
    training = factories.DepartmentFactory(slug="training", name="Training")
    factories.RateCardFactory(gpu_class=a100, price_per_gpu_hour=Decimal("2.00"))
    return a100, marketing, training
