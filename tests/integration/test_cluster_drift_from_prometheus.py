"""Drift read from a real Prometheus: kube-state-metrics' and Kueue's series, written as
OpenMetrics, backfilled with promtool, served by the ``prometheus`` binary, and compared
three times with what the portal renders, as the periodic check does.

The cluster's series carry a ``cluster`` label whose value holds a double quote (the
metric source's label filter must reach Prometheus escaped), and another cluster on the
same Prometheus holds what ours lacks (the filter must keep it out).

Two hours of history, three phases of 40 minutes, a check in each:

=========== ===================================== ============= ============ ============
department  rendered                              phase 1       phase 2      phase 3
=========== ===================================== ============= ============ ============
insync      4 GPUs                                as rendered   as rendered  as rendered
marketing   quota 8, CC-4100, nominal 0           12, CC-9999,  12, CC-4100, 12, CC-9999,
                                                  nominal 10    nominal 10   nominal 10
research    4 GPUs                                (only in the other cluster)
held        budget spent: Hold                    pending       active       active
lifted      budget grown: no hold                 pending       pending      pending
=========== ===================================== ============= ============ ============
"""

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core import mail
from django.utils import timezone

from cluster import services
from cluster.models import DriftCheck, DriftFinding, Verdict
from cluster.selectors import drift_verdicts, open_drift_count
from core.roles import IT_ADMIN
from demo import local_prometheus
from metering.models import MetricSource
from tests import factories
from tests.cluster.drift_world import COST_CENTRES, GPUS, drift_world, namespace_labels
from tests.conftest import require_prometheus

pytestmark = pytest.mark.integration

CLUSTER = 'eu "one"'
OTHER_CLUSTER = "us"
STEP = dt.timedelta(seconds=30)
PHASE = dt.timedelta(minutes=40)
PHASES = 3


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class OpenMetrics:
    """Gauge series over the phases: a value per phase (``None``: no sample then)."""

    def __init__(self, start: dt.datetime):
        self.start = start
        self.families: dict[str, list[tuple[dict, tuple]]] = {}

    def add(self, metric: str, labels: dict, values: tuple) -> None:
        assert len(values) == PHASES
        self.families.setdefault(metric, []).append((labels, values))

    def write(self, path: Path) -> None:
        lines = []
        for metric, series in self.families.items():
            lines.append(f"# TYPE {metric} gauge")
            for labels, values in series:
                text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                for phase, value in enumerate(values):
                    if value is None:
                        continue
                    at = self.start + phase * PHASE
                    while at < self.start + (phase + 1) * PHASE:
                        lines.append(f"{metric}{{{text}}} {value} {int(at.timestamp())}")
                        at += STEP
        lines.append("# EOF")
        path.write_text("\n".join(lines) + "\n")


def _every(value) -> tuple:
    return (value,) * PHASES


def _cluster_series(om: OpenMetrics, cluster: str, slugs: list[str]) -> None:
    """What a cluster holding exactly what the portal renders would show, for ``slugs``,
    with marketing, held and lifted as the table above says."""
    for namespace in ["kube-system", *(f"dept-{slug}" for slug in slugs)]:
        om.add(
            "kube_namespace_status_phase",
            {"cluster": cluster, "namespace": namespace, "phase": "Active"},
            _every(1),
        )
        om.add(
            "kube_namespace_status_phase",
            {"cluster": cluster, "namespace": namespace, "phase": "Terminating"},
            _every(0),
        )
    for slug in slugs:
        labels = {"cluster": cluster, "namespace": f"dept-{slug}", **namespace_labels(slug)}
        if slug == "marketing":
            cost_centre = "label_gpu_chargeback_portal_cost_centre"
            for phase_value, phases in [("CC-9999", (1, None, 1)), ("CC-4100", (None, 1, None))]:
                om.add("kube_namespace_labels", {**labels, cost_centre: phase_value}, phases)
        else:
            om.add("kube_namespace_labels", labels, _every(1))
    for slug in slugs:
        om.add(
            "kube_resourcequota",
            {
                "cluster": cluster,
                "namespace": f"dept-{slug}",
                "resourcequota": "gpu",
                "resource": "requests.nvidia.com/gpu",
                "type": "hard",
            },
            _every(12 if slug == "marketing" else GPUS[slug]),
        )
    for slug in slugs:
        current = {
            "held": ("pending", "active", "active"),
            "lifted": ("pending", "pending", "pending"),
        }.get(slug, ("active",) * PHASES)
        for status in ("pending", "active", "terminating"):
            om.add(
                "kueue_cluster_queue_status",
                {"cluster": cluster, "cluster_queue": slug, "status": status},
                tuple(int(status == now) for now in current),
            )
    for slug in slugs:
        om.add(
            "kueue_cluster_queue_nominal_quota",
            {
                "cluster": cluster,
                "cohort": "gpu-fleet",
                "cluster_queue": slug,
                "flavor": "t4",
                "resource": "nvidia.com/gpu",
            },
            _every(10 if slug == "marketing" else 0),
        )
        # Batch work keeps no T4: it borrows up to its hard quota.
        om.add(
            "kueue_cluster_queue_borrowing_limit",
            {
                "cluster": cluster,
                "cohort": "gpu-fleet",
                "cluster_queue": slug,
                "flavor": "t4",
                "resource": "nvidia.com/gpu",
            },
            _every(GPUS[slug]),
        )


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[tuple[str, dt.datetime]]:
    """A real Prometheus over the two hours of series, ending three hours ago (what
    promtool backfills must not overlap a running server's head)."""
    require_prometheus()
    root = tmp_path_factory.mktemp("drift-prometheus")
    start = (timezone.now() - dt.timedelta(hours=5)).replace(second=0, microsecond=0)
    om = OpenMetrics(start)
    ours = [s for s in COST_CENTRES if s != "research"]
    _cluster_series(om, CLUSTER, ours)
    # The other cluster holds research, which ours lacks.
    _cluster_series(om, OTHER_CLUSTER, ["research"])
    # promtool wants each family's series together: they are, family by family.
    om.families = dict(sorted(om.families.items()))
    om.write(root / "drift.om")
    local_prometheus.backfill(root / "drift.om", root / "data")
    with local_prometheus.running(root / "data", log_path=root / "prometheus.log") as server:
        yield server.url, start


def _findings(department: str, **filters) -> list[tuple]:
    return sorted(
        (f.kind, f.namespace, f.name, f.field, f.wanted, f.found)
        for f in DriftFinding.objects.filter(department__slug=department, **filters)
    )


def _check(at: dt.datetime, django_capture_on_commit_callbacks) -> DriftCheck:
    with django_capture_on_commit_callbacks(execute=True):
        (check,) = services.drift_check(at=at)
    return check


def test_drift_is_read_from_prometheus_recorded_and_mailed_once_per_drift(
    db, prometheus, settings, django_capture_on_commit_callbacks
):
    url, start = prometheus
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    drift_world()
    factories.UserFactory(username="ivan", email="ivan@example.com", groups=[IT_ADMIN])
    MetricSource.objects.update(enabled=False, is_billing=False)
    factories.MetricSourceFactory(
        name="kube", prometheus_url=url, label_filters={"cluster": CLUSTER}, is_billing=True
    )

    # --- Phase 1 ---------------------------------------------------------------------
    first = _check(start + PHASE * 0.75, django_capture_on_commit_callbacks)

    assert (first.status, first.error, first.warnings) == ("ok", "", [])
    verdicts = {v.department.slug: v.verdict for v in drift_verdicts()}
    assert verdicts == {
        "held": Verdict.IN_SYNC,  # held, and Kueue says pending
        "insync": Verdict.IN_SYNC,
        "lifted": Verdict.DRIFTED,
        "marketing": Verdict.DRIFTED,
        "research": Verdict.MISSING,
    }
    assert _findings("marketing") == [
        ("ClusterQueue", "", "marketing", "nominalQuota t4/nvidia.com/gpu", "0", "10"),
        (
            "Namespace",
            "",
            "dept-marketing",
            "label gpu-chargeback-portal/cost-centre",
            "CC-4100",
            "CC-9999",
        ),
        ("ResourceQuota", "dept-marketing", "gpu", "hard requests.nvidia.com/gpu", "8", "12"),
    ]
    assert _findings("research") == [
        ("ClusterQueue", "", "research", "", "present", "absent"),
        ("Namespace", "", "dept-research", "", "present", "absent"),
        ("ResourceQuota", "dept-research", "gpu", "", "present", "absent"),
    ]
    assert _findings("lifted") == [("ClusterQueue", "", "lifted", "status", "active", "pending")]
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ivan@example.com"]
    assert mail.outbox[0].subject == (
        "[GPU portal] Cluster default: 7 new differences from what the portal rendered "
        "(Lifted, Marketing, Research)"
    )
    assert (
        "ResourceQuota dept-marketing/gpu hard requests.nvidia.com/gpu: wanted 8, found 12"
        in mail.outbox[0].body
    )
    assert "Namespace dept-research is missing" in mail.outbox[0].body
    assert open_drift_count() == {"default": 7}

    # --- Phase 2: the label fixed, the held queue let go by hand ----------------------
    second = _check(start + PHASE * 1.75, django_capture_on_commit_callbacks)

    assert second.status == "ok"
    assert {v.department.slug: v.verdict for v in drift_verdicts()}["held"] == Verdict.DRIFTED
    assert _findings("held") == [
        ("ClusterQueue", "", "held", "status", "pending (held: stopPolicy Hold)", "active")
    ]
    assert _findings("marketing", resolved_at__isnull=False) == [
        (
            "Namespace",
            "",
            "dept-marketing",
            "label gpu-chargeback-portal/cost-centre",
            "CC-4100",
            "CC-9999",
        ),
    ]
    quota = DriftFinding.objects.get(department__slug="marketing", kind="ResourceQuota")
    assert (quota.first_seen, quota.last_seen) == (first.at, second.at)
    # Only the new drift is mailed; those still open were told already.
    assert len(mail.outbox) == 2
    assert mail.outbox[1].subject == (
        "[GPU portal] Cluster default: 1 new difference from what the portal rendered (Held)"
    )
    assert "ClusterQueue held status: wanted pending (held: stopPolicy Hold), found active" in (
        mail.outbox[1].body
    )

    # --- Phase 3: the label edited by hand again: a new drift ------------------------
    third = _check(start + PHASE * 2.75, django_capture_on_commit_callbacks)

    assert third.status == "ok"
    label = DriftFinding.objects.filter(
        department__slug="marketing", field="label gpu-chargeback-portal/cost-centre"
    ).order_by("first_seen")
    assert [(f.first_seen, f.resolved_at) for f in label] == [
        (first.at, second.at),
        (third.at, None),
    ]
    assert len(mail.outbox) == 3
    assert "CC-9999" in mail.outbox[2].body and "12" not in mail.outbox[2].body
    assert open_drift_count() == {"default": 8}

    # --- Now: Prometheus holds nothing this recent; nothing is called in sync --------
    now = _check(timezone.now(), django_capture_on_commit_callbacks)

    assert now.status == "failed"
    assert "holds no kube_namespace_status_phase series" in now.error
    verdicts = drift_verdicts()
    assert {v.verdict for v in verdicts} == {Verdict.UNKNOWN}
    assert all(v.error == now.error for v in verdicts)
    assert open_drift_count() == {"default": 8}  # nobody saw them go away
    assert len(mail.outbox) == 3
