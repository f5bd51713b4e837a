"""Drift: what the clusters hold, read back from Prometheus, against what the portal
rendered for them.

A :class:`DriftCheck` is one comparison of one cluster; a :class:`DriftFinding` is one
difference (an object missing, or one field of it not what the portal rendered), open
from the check that first saw it until the first check that no longer does. The database
keeps at most one open finding per identity, so a difference seen again is the same
finding (its ``last_seen`` moves), and one that comes back after it was resolved is a
new finding (a new drift, told to IT again).
"""

from django.db import models
from django.db.models import F, Q

from departments.models import Department

# ``DriftFinding.field`` of a finding about the object itself: it is not there.
OBJECT_FIELD = ""
PRESENT, ABSENT = "present", "absent"


class Verdict(models.TextChoices):
    """What a department's objects in a cluster are, against what the portal rendered."""

    IN_SYNC = "in_sync", "In sync"
    DRIFTED = "drifted", "Drifted"
    MISSING = "missing", "Missing"
    UNKNOWN = "unknown", "Unknown"


class DriftCheck(models.Model):
    """One comparison of one cluster with what the portal rendered for it at ``at``."""

    class Status(models.TextChoices):
        OK = "ok", "Compared"
        FAILED = "failed", "Failed (drift unknown)"

    cluster = models.CharField(max_length=63, help_text="The cluster's slug.")
    at = models.DateTimeField(help_text="The instant rendered and read from Prometheus.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices)
    error = models.TextField(blank=True, help_text="Why the cluster could not be compared.")
    warnings = models.JSONField(
        default=list,
        blank=True,
        help_text="What looks like a gap in what Prometheus is given, rather than drift.",
    )
    prometheus_url = models.CharField("Prometheus URL", max_length=500, blank=True)
    departments = models.JSONField(
        default=list, blank=True, help_text="The slugs of the departments compared."
    )
    findings_open = models.PositiveIntegerField(
        default=0, help_text="Open findings of the cluster after this check."
    )

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["cluster", "-started_at"], name="drift_check_latest")]
        constraints = [
            models.CheckConstraint(
                condition=Q(finished_at__gte=F("started_at")),
                name="drift_check_finishes_after_it_starts",
            ),
            models.CheckConstraint(
                condition=Q(status="ok") | ~Q(error=""),
                name="drift_check_failure_says_why",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.cluster} at {self.at:%Y-%m-%d %H:%M} UTC: {self.get_status_display()}"


class DriftFinding(models.Model):
    """One difference between a department's objects in a cluster and what the portal
    rendered: an object ``absent`` (``field`` blank), or one field ``found`` other than
    ``wanted``."""

    cluster = models.CharField(max_length=63, help_text="The cluster's slug.")
    department = models.ForeignKey(
        Department, on_delete=models.CASCADE, related_name="drift_findings"
    )
    kind = models.CharField(max_length=40, help_text="Namespace, ResourceQuota, ClusterQueue.")
    namespace = models.CharField(max_length=63, blank=True)
    name = models.CharField(max_length=253)
    field = models.CharField(
        max_length=200, blank=True, help_text="Blank: the object itself is not there."
    )
    wanted = models.CharField(max_length=300)
    found = models.CharField(max_length=300)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    resolved_at = models.DateTimeField(
        null=True, blank=True, help_text="The first check that no longer saw it."
    )
    notified_at = models.DateTimeField(
        null=True, blank=True, help_text="When IT was mailed about it."
    )

    class Meta:
        ordering = ["cluster", "department__slug", "kind", "namespace", "name", "field"]
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "department", "kind", "namespace", "name", "field"],
                condition=Q(resolved_at__isnull=True),
                name="one_open_drift_finding",
                violation_error_message="This difference is already an open finding.",
            ),
            models.CheckConstraint(
                condition=Q(last_seen__gte=F("first_seen")),
                name="drift_finding_seen_in_order",
            ),
            models.CheckConstraint(
                condition=Q(resolved_at__isnull=True) | Q(resolved_at__gte=F("last_seen")),
                name="drift_finding_resolved_after_last_seen",
            ),
        ]
        indexes = [
            models.Index(
                fields=["cluster"],
                condition=Q(resolved_at__isnull=True),
                name="drift_finding_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.cluster}: {self.object_label} {self.field or ''}".strip()

    @property
    def object_label(self) -> str:
        return (
            f"{self.kind} {self.namespace}/{self.name}"
            if self.namespace
            else (f"{self.kind} {self.name}")
        )

    @property
    def is_missing(self) -> bool:
        return self.field == OBJECT_FIELD

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    def describe(self) -> str:
        """One line a person reads: what differs, what the portal wants, what is there."""
        if self.is_missing:
            return f"{self.object_label} is missing"
        return f"{self.object_label} {self.field}: wanted {self.wanted}, found {self.found}"
