"""Fixtures shared by the whole suite.

Services: a test that needs a real service (PostgreSQL, Redis) asks for it through
:func:`require_service`. Where the service is missing the test is skipped, unless
``PORTAL_REQUIRE_SERVICES=1`` (set by CI), where it fails: in CI nothing skips for want of
a service.
"""

import os
from dataclasses import dataclass

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from core.roles import FINANCE, IT_ADMIN
from departments.models import Membership, Tier
from tests import factories

REQUIRE_SERVICES = os.environ.get("PORTAL_REQUIRE_SERVICES") == "1"
ROLES = ["anonymous", "member", "manager", "other_manager", "finance", "it_admin"]


def pytest_collection_modifyitems(config, items):
    """With pytest-xdist (``make test`` runs a worker per core), the tests of
    ``tests/integration/``, which share Redis queues, ports and long-lived processes, run
    one after another on one worker (``--dist loadgroup``); the rest spread over all. An
    integration test that needs none of them names a group of its own."""
    for item in items:
        if item.nodeid.startswith("tests/integration/") and not item.get_closest_marker(
            "xdist_group"
        ):
            item.add_marker(pytest.mark.xdist_group("services"))


@pytest.fixture(autouse=True, scope="session")
def _broker_in_memory():
    """What the tests' own process publishes (a job's dispatch) goes to kombu's in-memory
    transport, never into the demo's broker under var/. A test that needs a real broker
    points the app at it (tests/integration/conftest.py, portal_producer)."""
    from portal.celery import app

    app.conf.broker_url = "memory://"
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's deliberate slowness is for attackers, not for the thousands of users the
    # suite creates; the hashers themselves are Django's concern.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_rate_limit_counts():
    # The rate-limit counters live in the cache, local memory shared by every test of the
    # process: each test starts with none, whatever ran before it.
    cache.clear()


def require_service(name: str, available: bool, hint: str) -> None:
    if available:
        return
    message = f"{name} is not available ({hint})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; PORTAL_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(message)


# The data migrations that install and update the built-in metric sources, in order: a
# transactional test's flush empties what they made, and a test that needs the sources
# back runs them again (each is idempotent) on the migration state's models.
BUILTIN_SOURCE_MIGRATIONS = [
    ("metering.migrations.0002_builtin_sources_and_roles", "install"),
    ("metering.migrations.0004_ledger_in_gpu_seconds", "to_seconds"),
    ("metering.migrations.0005_samples_at_the_end_of_each_minute", "at_the_end"),
    ("metering.migrations.0007_fractional_gpus", "see_fractions"),
]


def builtin_sources_install() -> None:
    """Install the built-in metric sources as the migrations leave them: each data
    migration runs on the models as they were at that migration (a field's default then
    is not today's)."""
    import importlib

    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection)
    with connection.schema_editor() as editor:
        for module, function in BUILTIN_SOURCE_MIGRATIONS:
            app, _, name = module.split(".")
            state_apps = loader.project_state((app, name)).apps
            getattr(importlib.import_module(module), function)(state_apps, editor)


def require_prometheus() -> None:
    """The distribution's ``prometheus`` and ``promtool`` are installed (CI installs them)."""
    from demo import local_prometheus

    try:
        local_prometheus.binaries()
    except local_prometheus.PrometheusNotInstalled as missing:
        require_service("Prometheus", False, str(missing))


@pytest.fixture
def postgres(db):
    """The test database is PostgreSQL (CI runs the whole suite on it)."""
    require_service(
        "PostgreSQL",
        connection.vendor == "postgresql",
        f"the suite runs on {connection.vendor}; set DATABASE_URL=postgres://...",
    )


@dataclass
class World:
    """Two departments with everything that hangs off them, and one user per role:
    ``member`` and ``manager`` belong to marketing, ``other_manager`` to training."""

    marketing: object
    training: object
    a100: object
    t4: object
    marketing_quota: object
    training_quota: object
    marketing_sla: object
    training_sla: object
    off_peak: object
    users: dict
    lipsync: object = None  # a job kind
    manager_job: object = None  # a finished marketing job the manager submitted
    member_job: object = None  # a queued marketing job the member submitted

    def user(self, role: str):
        return self.users.get(role)


@pytest.fixture
def world(db, settings, tmp_path) -> World:
    a100 = factories.GpuClassFactory(slug="a100", name="A100", model_regex=".*A100.*")
    t4 = factories.GpuClassFactory(slug="t4", name="T4", model_regex=".*T4.*", capacity_gpus=16)
    marketing = factories.DepartmentFactory(slug="marketing", name="Marketing")
    training = factories.DepartmentFactory(slug="training", name="Training")
    factories.NamespaceFactory(name="dept-marketing", department=marketing)
    factories.NamespaceFactory(name="dept-training", department=training)
    users = {
        "member": factories.UserFactory(username="mila"),
        "manager": factories.UserFactory(username="mara"),
        "other_manager": factories.UserFactory(username="tara"),
        "finance": factories.UserFactory(username="fiona", groups=[FINANCE]),
        "it_admin": factories.UserFactory(username="ivan", groups=[IT_ADMIN]),
    }
    factories.MembershipFactory(user=users["member"], department=marketing)
    factories.MembershipFactory(
        user=users["manager"], department=marketing, role=Membership.Role.MANAGER
    )
    factories.MembershipFactory(
        user=users["other_manager"], department=training, role=Membership.Role.MANAGER
    )
    settings.MEDIA_ROOT = tmp_path / "media"
    lipsync = factories.JobKindFactory(slug="lipsync-render", name="Lip-sync render")
    manager_job = factories.GenerationJobFactory(
        department=marketing,
        submitter=users["manager"],
        kind=lipsync,
        gpu_class=t4,
        namespace="dept-marketing",
        state="succeeded",
        started_at=timezone.now(),
        finished_at=timezone.now(),
        result_files=["result.txt"],
    )
    folder = settings.MEDIA_ROOT / "jobs" / str(manager_job.pk)
    folder.mkdir(parents=True)
    (folder / "result.txt").write_text("done")
    (folder / "job.log").write_text("--- attempt 1\n")
    member_job = factories.GenerationJobFactory(
        department=marketing, submitter=users["member"], kind=lipsync, gpu_class=t4
    )
    return World(
        lipsync=lipsync,
        manager_job=manager_job,
        member_job=member_job,
        marketing=marketing,
        training=training,
        a100=a100,
        t4=t4,
        marketing_quota=factories.QuotaFactory(department=marketing, job_kind="lipsync-render"),
        training_quota=factories.QuotaFactory(department=training),
        marketing_sla=factories.ServiceLevelFactory(
            department=marketing, tier=Tier.BATCH, gpu_classes=[t4]
        ),
        training_sla=factories.ServiceLevelFactory(
            department=training, tier=Tier.INTERACTIVE, gpu_classes=[a100, t4]
        ),
        off_peak=factories.OffPeakWindowFactory(name="Nightly"),
        users=users,
    )


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def client_as(client, world: World, role: str):
    """``client`` signed in as ``role`` (left anonymous for "anonymous")."""
    user = world.user(role)
    if user is not None:
        client.force_login(user)
    return client


# --- The identity provider ---------------------------------------------------------------------

_oidc_provider = None


@pytest.fixture(scope="session")
def oidc_provider():
    """A real OpenID provider (Canaille, tests/oidc_provider.py), one per test process."""
    global _oidc_provider
    if _oidc_provider is None:
        from tests.oidc_provider import OidcProvider

        _oidc_provider = OidcProvider()
    yield _oidc_provider


@pytest.fixture
def oidc(oidc_provider, settings):
    """The portal set up to sign people in with :func:`oidc_provider`, with no discovery
    document or keys kept from an earlier test."""
    from accounts import bearer

    for name, value in oidc_provider.portal_settings().items():
        setattr(settings, name, value)
    cache.clear()
    bearer.forget_keys()
    yield oidc_provider
    bearer.forget_keys()
