"""Operations of the cluster app: writing what the clusters should hold to a kustomize
directory, and checking (and recording, and telling IT) how far the clusters drifted from
it."""

import datetime as dt
import logging
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from cluster import drift, manifests, selectors
from cluster.manifests import HEADER, Fleet
from cluster.models import DriftCheck, DriftFinding
from departments.models import Department
from metering import collector

logger = logging.getLogger(__name__)


def _ours(directory: Path) -> bool:
    """Whether ``directory`` is a cluster directory the portal wrote (its kustomization
    starts with the portal's header), so it may be replaced or removed."""
    kustomization = directory / "kustomization.yaml"
    return kustomization.is_file() and kustomization.read_text().startswith(HEADER)


def manifests_write(fleet: Fleet, out: Path, *, prune: bool = True) -> dict[str, int]:
    """Write one kustomize directory per cluster of ``fleet`` under ``out``
    (``out/<cluster>/kustomization.yaml`` and one file per object), each swapped in whole
    by a rename; with ``prune``, remove the portal's directories of clusters that are gone.
    Another directory of the same name that the portal did not write is refused, never
    overwritten. Returns the number of objects written per cluster."""
    out.mkdir(parents=True, exist_ok=True)
    for c in fleet.clusters:
        target = out / c.slug
        if target.exists() and not _ours(target):
            raise FileExistsError(
                f"{target} exists and was not written by the portal (its kustomization.yaml "
                "lacks the portal's header); move it away or choose another --out."
            )
    written = {}
    for c in fleet.clusters:
        target = out / c.slug
        staging = Path(tempfile.mkdtemp(prefix=f".{c.slug}.", dir=out))
        for name, text in c.files().items():
            (staging / name).write_text(text)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{c.slug}.old.", dir=out))
            target.rename(retired / c.slug)
            staging.rename(target)
            shutil.rmtree(retired)
        else:
            staging.rename(target)
        written[c.slug] = len(c.manifests)
    if prune:
        kept = {c.slug for c in fleet.clusters}
        for directory in out.iterdir():
            if directory.is_dir() and directory.name not in kept and _ours(directory):
                shutil.rmtree(directory)
    return written


# --- Drift ------------------------------------------------------------------------------------


def drift_check(*, at: dt.datetime | None = None, cluster: str | None = None) -> list[DriftCheck]:
    """Compare every cluster (or ``cluster``) with what the portal renders for it at
    ``at`` (default now), reading Prometheus at that instant; record a check per cluster
    and its findings (:func:`drift_record`). A cluster whose Prometheus cannot be read,
    or a fleet that cannot be rendered, gets a failed check with the reason: its open
    findings stay as they were, and its verdicts read *unknown*, never *in sync*."""
    at = at or timezone.now()
    started = timezone.now()
    slugs = [
        (slug, row) for slug, row in selectors.clusters() if cluster is None or slug == cluster
    ]
    try:
        fleet = manifests.render(at=at)
    except manifests.RenderError as exc:
        error = (
            "The portal cannot render the clusters' objects, so there is nothing to compare "
            f"them with: {'; '.join(exc.errors)}"
        )
        return [
            _drift_failed(cluster=slug, at=at, started=started, error=error) for slug, _ in slugs
        ]
    rows = dict(slugs)
    checks = []
    for cluster_manifests in fleet.clusters:
        slug = cluster_manifests.slug
        if slug not in rows:
            continue
        row = rows[slug]
        source = selectors.drift_source(cluster=row)
        departments = sorted({m.department for m in cluster_manifests.manifests if m.department})
        try:
            observed = drift.observe(source, at=at, label_keys=drift.label_keys(cluster_manifests))
        except collector.PrometheusError as exc:
            checks.append(
                _drift_failed(
                    cluster=slug,
                    at=at,
                    started=started,
                    error=str(exc),
                    departments=departments,
                    prometheus_url=collector.base_url(source),
                )
            )
            continue
        checks.append(
            drift_record(
                cluster=slug,
                findings=drift.compare(cluster_manifests, observed),
                at=at,
                started=started,
                warnings=observed.warnings,
                prometheus_url=collector.base_url(source),
            )
        )
    return checks


def _drift_failed(
    *,
    cluster: str,
    at: dt.datetime,
    started: dt.datetime,
    error: str,
    departments: list[str] | None = None,
    prometheus_url: str = "",
) -> DriftCheck:
    logger.warning("Drift check of cluster %s failed: %s", cluster, error)
    return DriftCheck.objects.create(
        cluster=cluster,
        at=at,
        started_at=started,
        finished_at=max(timezone.now(), started),
        status=DriftCheck.Status.FAILED,
        error=error,
        departments=departments or [],
        prometheus_url=prometheus_url,
        findings_open=DriftFinding.objects.filter(
            cluster=cluster, resolved_at__isnull=True
        ).count(),
    )


def drift_record(
    *,
    cluster: str,
    findings: dict[str, list[drift.Finding]],
    at: dt.datetime,
    started: dt.datetime | None = None,
    warnings: list[str] | tuple = (),
    prometheus_url: str = "",
) -> DriftCheck:
    """Record what one check of ``cluster`` found, per department slug (every department
    compared, an empty list where in sync), in one transaction: a difference already open
    is seen again (``last_seen``, and what is found now), a new one is opened, and every
    open finding of the cluster this check did not see is resolved (a department no
    longer rendered there included). Once committed, IT is mailed the findings nobody was
    told about (:func:`drift_notify`). Safe to run twice at once: an open finding is
    unique in the database, and the mail goes out once."""
    started = started or timezone.now()
    departments = {
        d.slug: d for d in Department.objects.filter(slug__in=list(findings)).only("pk", "slug")
    }
    with transaction.atomic():
        open_findings = {
            (f.department_id, f.kind, f.namespace, f.name, f.field): f
            for f in DriftFinding.objects.select_for_update().filter(
                cluster=cluster, resolved_at__isnull=True
            )
        }
        seen, new = [], []
        for slug, found in findings.items():
            department = departments.get(slug)
            if department is None:
                continue
            for finding in dict.fromkeys(found):
                key = (department.pk, *finding.identity)
                existing = open_findings.pop(key, None)
                if existing is not None:
                    existing.wanted, existing.found = finding.wanted[:300], finding.found[:300]
                    existing.last_seen = max(at, existing.last_seen)
                    seen.append(existing)
                else:
                    new.append(
                        DriftFinding(
                            cluster=cluster,
                            department=department,
                            kind=finding.kind,
                            namespace=finding.namespace,
                            name=finding.name,
                            field=finding.field,
                            wanted=finding.wanted[:300],
                            found=finding.found[:300],
                            first_seen=at,
                            last_seen=at,
                        )
                    )
        DriftFinding.objects.bulk_update(seen, ["wanted", "found", "last_seen"])
        # A check running alongside may have opened the same finding: the database keeps one.
        DriftFinding.objects.bulk_create(new, ignore_conflicts=True)
        for gone in open_findings.values():
            gone.resolved_at = max(at, gone.last_seen)
        DriftFinding.objects.bulk_update(open_findings.values(), ["resolved_at"])
        check = DriftCheck.objects.create(
            cluster=cluster,
            at=at,
            started_at=started,
            finished_at=max(timezone.now(), started),
            status=DriftCheck.Status.OK,
            warnings=list(warnings),
            departments=sorted(departments),
            prometheus_url=prometheus_url,
            findings_open=DriftFinding.objects.filter(
                cluster=cluster, resolved_at__isnull=True
            ).count(),
        )
        transaction.on_commit(lambda: drift_notify(cluster=cluster))
    return check


def drift_notify(*, cluster: str) -> int:
    """Mail IT (the it-admin group) the open findings of ``cluster`` nobody was told about
    yet, in one message, and mark them told; returns how many. Each drift is mailed once:
    a finding that stays open is not mailed again, one that comes back after it was
    resolved is a new finding. The findings are claimed before the mail goes out (two
    callers never mail the same one) and given back if it cannot be sent, for the next
    check to try again."""
    recipients = selectors.it_admin_emails()
    if not recipients:
        logger.warning("Drift in cluster %s, but nobody in it-admin has an email address.", cluster)
        return 0
    with transaction.atomic():
        new = list(
            DriftFinding.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(cluster=cluster, resolved_at__isnull=True, notified_at__isnull=True)
            .select_related("department")
            .order_by("department__slug", "kind", "namespace", "name", "field")
        )
        if not new:
            return 0
        DriftFinding.objects.filter(pk__in=[f.pk for f in new]).update(notified_at=timezone.now())
    subject, body = _drift_mail(cluster, new)
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception:  # the findings are the record; the next check mails them again
        logger.exception("Could not mail the drift of cluster %s", cluster)
        DriftFinding.objects.filter(pk__in=[f.pk for f in new]).update(notified_at=None)
        return 0
    return len(new)


def _drift_mail(cluster: str, findings: list[DriftFinding]) -> tuple[str, str]:
    departments = sorted({f.department.name for f in findings})
    subject = (
        f"[GPU portal] Cluster {cluster}: {len(findings)} new "
        f"{'difference' if len(findings) == 1 else 'differences'} from what the portal "
        f"rendered ({', '.join(departments)})"
    )
    lines = [
        f"Prometheus shows that cluster {cluster} no longer holds what the portal rendered for it:",
        "",
    ]
    for department in departments:
        lines.append(f"{department}:")
        lines += [f"  - {f.describe()}" for f in findings if f.department.name == department]
        lines.append("")
    lines.append(
        "Each is mailed once. A hand edit is undone by applying the portal's objects again "
        "(GitOps, or `manage.py cluster_manifests`); if the portal is wrong, change it there."
    )
    return subject, "\n".join(lines) + "\n"
