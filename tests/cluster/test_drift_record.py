"""Recording what a check found: a difference seen again is the same finding, one no
longer seen is resolved, one that comes back is a new drift; IT is mailed each drift
once; and a cluster that cannot be read is *unknown*, never *in sync*."""

import datetime as dt
import socket

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from cluster import services
from cluster.drift import Finding
from cluster.models import DriftCheck, DriftFinding, Verdict
from cluster.selectors import NEVER_CHECKED, drift_source, drift_verdicts, open_drift_count
from core.roles import IT_ADMIN
from metering import collector
from metering.models import MetricSource
from tests import factories
from tests.cluster.drift_world import drift_world

T = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
QUOTA = Finding("ResourceQuota", "dept-marketing", "gpu", "hard requests.nvidia.com/gpu", "8", "12")
LABEL = Finding(
    "Namespace",
    "",
    "dept-marketing",
    "label gpu-chargeback-portal/cost-centre",
    "CC-4100",
    "CC-9999",
)
SLUGS = ["held", "insync", "lifted", "marketing", "research"]


def free_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def fleet(db, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    world = drift_world()
    factories.UserFactory(username="ivan", email="ivan@example.com", groups=[IT_ADMIN])
    factories.UserFactory(username="iris", email="", groups=[IT_ADMIN])  # no address
    factories.UserFactory(username="mara", email="mara@example.com")  # not IT
    return world


def record(at, django_capture_on_commit_callbacks, **found):
    with django_capture_on_commit_callbacks(execute=True):
        return services.drift_record(
            cluster="default", findings={slug: found.get(slug, []) for slug in SLUGS}, at=at
        )


def test_a_difference_seen_again_is_one_finding_mailed_once(
    fleet, django_capture_on_commit_callbacks
):
    record(T, django_capture_on_commit_callbacks, marketing=[QUOTA])
    record(T + dt.timedelta(minutes=10), django_capture_on_commit_callbacks, marketing=[QUOTA])

    (finding,) = DriftFinding.objects.all()
    assert (finding.first_seen, finding.last_seen, finding.resolved_at) == (
        T,
        T + dt.timedelta(minutes=10),
        None,
    )
    assert finding.notified_at is not None
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ivan@example.com"]
    assert "ResourceQuota dept-marketing/gpu hard requests.nvidia.com/gpu: wanted 8, found 12" in (
        mail.outbox[0].body
    )


def test_what_is_found_now_replaces_what_was_found(fleet, django_capture_on_commit_callbacks):
    record(T, django_capture_on_commit_callbacks, marketing=[QUOTA])
    later = Finding(*QUOTA.identity, "8", "16")
    record(T + dt.timedelta(minutes=10), django_capture_on_commit_callbacks, marketing=[later])

    assert list(DriftFinding.objects.values_list("found", flat=True)) == ["16"]
    assert len(mail.outbox) == 1  # the same drift, still open: not mailed again


def test_a_difference_no_longer_seen_is_resolved_and_its_return_is_a_new_drift(
    fleet, django_capture_on_commit_callbacks
):
    record(T, django_capture_on_commit_callbacks, marketing=[QUOTA, LABEL])
    record(T + dt.timedelta(minutes=10), django_capture_on_commit_callbacks, marketing=[QUOTA])
    record(
        T + dt.timedelta(minutes=20), django_capture_on_commit_callbacks, marketing=[QUOTA, LABEL]
    )

    labels = DriftFinding.objects.filter(field=LABEL.field).order_by("first_seen")
    assert [(f.first_seen, f.resolved_at) for f in labels] == [
        (T, T + dt.timedelta(minutes=10)),
        (T + dt.timedelta(minutes=20), None),
    ]
    assert len(mail.outbox) == 2
    assert "cost-centre: wanted CC-4100, found CC-9999" in mail.outbox[1].body
    assert "requests.nvidia.com/gpu" not in mail.outbox[1].body


def test_findings_of_a_department_no_longer_rendered_are_resolved(
    fleet, django_capture_on_commit_callbacks
):
    record(T, django_capture_on_commit_callbacks, marketing=[QUOTA])
    with django_capture_on_commit_callbacks(execute=True):
        services.drift_record(cluster="default", findings={"insync": []}, at=T + dt.timedelta(1))

    assert DriftFinding.objects.get().resolved_at == T + dt.timedelta(1)


def test_the_database_keeps_one_open_finding_per_difference(fleet):
    marketing = fleet.departments["marketing"]
    fields = dict(
        cluster="default",
        department=marketing,
        kind="ResourceQuota",
        namespace="dept-marketing",
        name="gpu",
        field="hard requests.nvidia.com/gpu",
        wanted="8",
        found="12",
        first_seen=T,
        last_seen=T,
    )
    DriftFinding.objects.create(**fields)
    DriftFinding.objects.create(**{**fields, "resolved_at": T})  # a resolved one: fine
    with pytest.raises(IntegrityError), transaction.atomic():
        DriftFinding.objects.create(**fields)


def test_a_mail_that_cannot_be_sent_is_tried_again_by_the_next_check(
    fleet, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens
    record(T, django_capture_on_commit_callbacks, marketing=[QUOTA])
    assert DriftFinding.objects.get().notified_at is None

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    record(T + dt.timedelta(minutes=10), django_capture_on_commit_callbacks, marketing=[QUOTA])

    assert DriftFinding.objects.get().notified_at is not None
    assert len(mail.outbox) == 1


def test_verdicts_follow_the_findings_of_the_last_check(fleet, django_capture_on_commit_callbacks):
    assert {v.verdict for v in drift_verdicts()} == {Verdict.UNKNOWN}
    assert {v.error for v in drift_verdicts()} == {NEVER_CHECKED}

    missing = Finding("Namespace", "", "dept-research", "", "present", "absent")
    record(T, django_capture_on_commit_callbacks, marketing=[QUOTA], research=[missing])

    assert {v.department.slug: v.verdict for v in drift_verdicts()} == {
        "held": Verdict.IN_SYNC,
        "insync": Verdict.IN_SYNC,
        "lifted": Verdict.IN_SYNC,
        "marketing": Verdict.DRIFTED,
        "research": Verdict.MISSING,
    }
    (marketing,) = drift_verdicts(department=fleet.departments["marketing"])
    assert [f.field for f in marketing.findings] == [QUOTA.field]
    assert marketing.checked_at == T
    assert open_drift_count() == {"default": 2}
    assert drift_verdicts(cluster="elsewhere") == []


def test_a_cluster_whose_prometheus_cannot_be_reached_is_unknown_and_keeps_its_findings(
    fleet, django_capture_on_commit_callbacks
):
    record(T, django_capture_on_commit_callbacks, marketing=[QUOTA])
    MetricSource.objects.update(enabled=False, is_billing=False)
    factories.MetricSourceFactory(
        name="kube", prometheus_url=f"http://127.0.0.1:{free_port()}", is_billing=True
    )

    (check,) = services.drift_check(at=timezone.now())

    assert check.status == DriftCheck.Status.FAILED
    assert "Could not reach Prometheus at http://127.0.0.1:" in check.error
    assert check.departments == SLUGS
    verdicts = drift_verdicts()
    assert {v.verdict for v in verdicts} == {Verdict.UNKNOWN}
    assert {v.error for v in verdicts} == {check.error}
    (marketing,) = [v for v in verdicts if v.department.slug == "marketing"]
    assert [f.field for f in marketing.findings] == [QUOTA.field]
    assert DriftFinding.objects.get().resolved_at is None
    assert open_drift_count() == {"default": 1}


def test_a_fleet_that_cannot_be_rendered_is_unknown(fleet, django_capture_on_commit_callbacks):
    factories.NamespaceFactory(name="kube-system", department=fleet.departments["insync"])

    (check,) = services.drift_check(at=timezone.now())

    assert check.status == DriftCheck.Status.FAILED
    assert check.error.startswith("The portal cannot render the clusters' objects")
    assert "kube-system" in check.error
    assert {v.verdict for v in drift_verdicts()} == {Verdict.UNKNOWN}


def test_open_drift_count_names_every_cluster(db):
    factories.ClusterFactory(slug="prod-eu")
    factories.ClusterFactory(slug="prod-us")
    marketing = factories.DepartmentFactory(slug="marketing")
    for cluster in ("prod-eu", "prod-eu", "gone"):
        DriftFinding.objects.create(
            cluster=cluster,
            department=marketing,
            kind="Namespace",
            name=f"ns-{DriftFinding.objects.count()}",
            wanted="present",
            found="absent",
            first_seen=T,
            last_seen=T,
        )

    assert open_drift_count() == {"prod-eu": 2, "prod-us": 0, "gone": 1}


def test_each_cluster_is_read_where_its_billing_source_reads(db, settings):
    settings.PROMETHEUS_URL = "http://prometheus.example:9090"
    MetricSource.objects.update(enabled=False, is_billing=False)
    eu = factories.ClusterFactory(slug="prod-eu")
    us = factories.ClusterFactory(slug="prod-us")
    asia = factories.ClusterFactory(slug="prod-asia")
    factories.MetricSourceFactory(name="eu-device", cluster=eu, label_filters={"c": "x"})
    factories.MetricSourceFactory(
        name="eu-allocation", cluster=eu, is_billing=True, label_filters={"cluster": "prod-eu"}
    )
    factories.MetricSourceFactory(
        name="us-device", cluster=us, prometheus_url="http://us.example:9090"
    )
    factories.MetricSourceFactory(name="asia-off", cluster=asia, enabled=False)

    assert drift_source(cluster=eu).label_filters == {"cluster": "prod-eu"}
    assert drift_source(cluster=us).prometheus_url == "http://us.example:9090"
    nothing = drift_source(cluster=asia)
    assert (nothing.pk, collector.base_url(nothing), nothing.label_filters) == (
        None,
        "http://prometheus.example:9090",
        {},
    )
