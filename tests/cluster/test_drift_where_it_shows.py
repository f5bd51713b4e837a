"""Where IT sees drift: the API (verdicts with their findings, filtered by department
and cluster), the department page's Cluster section (with the held state of the queue
and why), the admin, ``manage.py cluster_drift`` and the periodic task."""

import datetime as dt
import io
import socket

import pytest
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from cluster import services, tasks
from cluster.drift import Finding
from cluster.models import DriftCheck
from core.roles import IT_ADMIN
from metering.models import MetricSource
from tests import factories
from tests.cluster.drift_world import drift_world

T = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
QUOTA = Finding("ResourceQuota", "dept-marketing", "gpu", "hard requests.nvidia.com/gpu", "8", "12")
SLUGS = ["held", "insync", "lifted", "marketing", "research"]


@pytest.fixture
def checked(db, settings, django_capture_on_commit_callbacks):
    """The drift world, checked once: marketing's quota edited by hand."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    fleet = drift_world()
    with django_capture_on_commit_callbacks(execute=True):
        services.drift_record(
            cluster="default",
            findings={slug: [QUOTA] if slug == "marketing" else [] for slug in SLUGS},
            at=T,
        )
    return fleet


@pytest.fixture
def it_client(client):
    client.force_login(factories.UserFactory(username="ivan", groups=[IT_ADMIN]))
    return client


def test_the_api_lists_each_verdict_with_its_open_findings(checked, it_client):
    response = it_client.get("/api/v1/cluster/drift/")

    assert response.status_code == 200
    body = response.json()
    assert [(v["cluster"], v["department"], v["verdict"]) for v in body] == [
        ("default", "held", "in_sync"),
        ("default", "insync", "in_sync"),
        ("default", "lifted", "in_sync"),
        ("default", "marketing", "drifted"),
        ("default", "research", "in_sync"),
    ]
    (marketing,) = [v for v in body if v["department"] == "marketing"]
    assert marketing["checked_at"] == "2026-11-20T10:00:00Z"
    (finding,) = marketing["findings"]
    assert {k: finding[k] for k in ("kind", "namespace", "name", "field", "wanted", "found")} == {
        "kind": "ResourceQuota",
        "namespace": "dept-marketing",
        "name": "gpu",
        "field": "hard requests.nvidia.com/gpu",
        "wanted": "8",
        "found": "12",
    }
    assert finding["first_seen"] == "2026-11-20T10:00:00Z"
    assert finding["notified_at"] is None  # nobody in it-admin had an address then


def test_the_api_filters_by_department_and_cluster(checked, it_client):
    one = it_client.get("/api/v1/cluster/drift/?department=marketing&cluster=default").json()
    assert [(v["department"], v["verdict"]) for v in one] == [("marketing", "drifted")]

    unknown = it_client.get("/api/v1/cluster/drift/?cluster=nowhere")
    assert unknown.status_code == 400
    assert unknown.json()["cluster"] == ["No cluster “nowhere” (known: default)."]
    nobody = it_client.get("/api/v1/cluster/drift/?department=nobody")
    assert nobody.status_code == 400
    assert nobody.json()["department"] == ["No department “nobody”."]


def test_the_department_page_shows_it_the_cluster_section(checked, it_client):
    page = it_client.get("/departments/marketing/").content.decode()

    assert 'id="cluster"' in page
    assert '<span class="tag drift-drifted">Drifted</span>' in page
    assert "hard requests.nvidia.com/gpu" in page and "<td>12</td>" in page

    held = it_client.get("/departments/held/").content.decode()
    assert "<strong>held</strong>" in held
    assert "20 of 10 GPU-hours used this month" in held
    assert '<span class="tag drift-in_sync">In sync</span>' in held


def test_the_department_page_shows_no_cluster_section_to_others(checked, client):
    manager = factories.UserFactory(username="mara")
    factories.MembershipFactory(
        user=manager, department=checked.departments["marketing"], role="manager"
    )
    client.force_login(manager)

    page = client.get("/departments/marketing/")

    assert page.status_code == 200
    assert 'id="cluster"' not in page.content.decode()


def test_the_admin_lists_findings_for_it_with_an_open_filter(checked, it_client):
    marketing = checked.departments["marketing"].pk
    page = it_client.get(f"/admin/cluster/driftfinding/?open=yes&department__id__exact={marketing}")

    assert page.status_code == 200
    assert [f.field for f in page.context["cl"].result_list] == [QUOTA.field]
    assert it_client.get("/admin/cluster/driftfinding/?open=no").context["cl"].result_count == 0
    assert it_client.get("/admin/cluster/driftfinding/add/").status_code == 403


def _unreachable_prometheus() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    MetricSource.objects.update(enabled=False, is_billing=False)
    factories.MetricSourceFactory(
        name="kube", prometheus_url=f"http://127.0.0.1:{port}", is_billing=True
    )


def test_the_command_prints_each_verdict_and_fails_when_a_cluster_cannot_be_read(checked):
    _unreachable_prometheus()
    out = io.StringIO()

    with pytest.raises(CommandError, match="Could not compare default: Could not reach"):
        call_command("cluster_drift", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0] == "Cluster default: Failed (drift unknown)"
    assert lines[4].startswith("  marketing: unknown (Could not reach Prometheus at ")
    assert lines[5] == (
        "    - ResourceQuota dept-marketing/gpu hard requests.nvidia.com/gpu: wanted 8, found 12"
    )
    with pytest.raises(CommandError, match="No cluster “nowhere”"):
        call_command("cluster_drift", "--cluster", "nowhere")


def test_the_periodic_task_checks_every_cluster(checked):
    _unreachable_prometheus()

    assert tasks.check_drift.apply().get() == {"default": "failed"}
    assert DriftCheck.objects.filter(status="failed").count() == 1
    scheduled = PeriodicTask.objects.select_related("interval").get(
        name="Check the clusters for drift"
    )
    assert (scheduled.task, scheduled.interval.every, scheduled.enabled) == (
        "cluster.check_drift",
        600,
        True,
    )
