"""The cluster tests' fleet: the demo scenario (demo/scenario.py) in the test database, with
the label prefix, cohort and default cluster slug the golden files were written with,
whatever the environment says."""

import datetime as dt

import pytest
from django.utils import timezone

from cluster import manifests
from demo.scenario import demo_seed

# A Wednesday in the middle of a month, and a day of the next month.
AT = dt.datetime(2026, 3, 18, 12, 0, tzinfo=dt.UTC)
NEXT_MONTH = dt.datetime(2026, 4, 2, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _cluster_settings(settings):
    settings.CLUSTER_LABEL_PREFIX = "gpu-chargeback-portal"
    settings.CLUSTER_COHORT = "gpu-fleet"
    settings.CLUSTER_DEFAULT_SLUG = "default"


@pytest.fixture
def demo(postgres):
    """The demo scenario, seeded as ``manage.py seed_demo`` seeds it."""
    demo_seed()


def files(at: dt.datetime | None = None, cluster: str = "default") -> dict[str, str]:
    """The files of one cluster's kustomize directory, as rendered at ``at``."""
    fleet = manifests.render(at=at or timezone.now())
    (out,) = [c for c in fleet.clusters if c.slug == cluster]
    return out.files()


def bodies(fleet: manifests.Fleet) -> list[dict]:
    return [m.body for c in fleet.clusters for m in c.manifests]
