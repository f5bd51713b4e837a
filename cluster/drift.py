"""What a cluster holds, read from Prometheus (:func:`observe`), against what the portal
rendered for it (:func:`compare`).

Compared, per department: its namespaces (there, ``Active``, labelled as rendered), the
hard limits of its ResourceQuota, and its Kueue ClusterQueue (there, held or active as
rendered, its cohort, and the nominal quota, borrowing and lending limits of each flavor).
The LimitRanges, LocalQueues, WorkloadPriorityClasses and ResourceFlavors have no series
in kube-state-metrics' or Kueue's default metrics, so they are not compared.

Kueue reports a ClusterQueue with ``stopPolicy: Hold`` as ``pending`` (its cache sets a
queue that is stopped, or lacks a flavor or an admission check, to pending:
``pkg/cache/clusterqueue.go``, ``updateQueueStatus``); a held queue is in sync when Kueue
says pending, and a queue the portal wants active is drifted when Kueue says pending.

Nothing here touches the database.
"""

import datetime as dt
from collections import defaultdict
from contextlib import suppress
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import requests
from django.conf import settings
from prometheus_api_client import PrometheusApiClientException

from cluster import drift_promql
from cluster.manifests import ClusterManifests, Manifest
from cluster.models import ABSENT, OBJECT_FIELD, PRESENT, Verdict
from metering import collector
from metering.models import MetricSource
from metering.promql import label_matchers

NOT_SET = "(not set)"
MILLI = Decimal("0.001")
TOLERANCE = Decimal("0.000001")
ACTIVE_PHASE = "Active"
# What Kueue reports for a ClusterQueue, by what the portal rendered.
HELD_STATUS, ACTIVE_STATUS = "pending", "active"
WANTED_HELD = "pending (held: stopPolicy Hold)"
# Kinds whose objects are compared; the others have no series to compare with.
COMPARED_KINDS = ("Namespace", "ResourceQuota", "ClusterQueue")


@dataclass(frozen=True)
class Finding:
    """One difference; ``field`` blank: the object itself is absent."""

    kind: str
    namespace: str
    name: str
    field: str
    wanted: str
    found: str

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (self.kind, self.namespace, self.name, self.field)


@dataclass
class Observed:
    """What Prometheus says a cluster holds. Each value is the set of what its series say
    (one value where the cluster is seen once; more where copies disagree)."""

    phases: dict[str, set[str]] = field(default_factory=dict)
    namespace_labels: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    # (namespace, quota name) -> resource -> hard limits
    quotas: dict[tuple[str, str], dict[str, set[Decimal]]] = field(default_factory=dict)
    queue_statuses: dict[str, set[str]] = field(default_factory=dict)
    # limit field (nominalQuota...) -> queue -> (flavor, resource) -> values
    queue_limits: dict[str, dict[str, dict[tuple[str, str], set[Decimal]]]] = field(
        default_factory=dict
    )
    queue_cohorts: dict[str, set[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class NothingToCompare(collector.PrometheusError):
    """Prometheus answered, but holds nothing of the cluster to compare with."""


def _number(raw: str) -> Decimal:
    try:
        return Decimal(raw)
    except InvalidOperation:
        return Decimal("NaN")


def _text(value: Decimal) -> str:
    if value.is_infinite():
        return "+Inf" if value > 0 else "-Inf"
    if value.is_nan():
        return "NaN"
    # Kubernetes quantities reach Prometheus as floats: 0.1 may come back as 0.10000000001.
    with suppress(InvalidOperation):
        milli = value.quantize(MILLI)
        if abs(value - milli) < TOLERANCE:
            value = milli
    return f"{value.normalize():f}"


def _same(wanted: Decimal, found: Decimal) -> bool:
    if not (wanted.is_finite() and found.is_finite()):
        return wanted == found
    return abs(wanted - found) < TOLERANCE


def label_keys(rendered: ClusterManifests) -> list[str]:
    """The Kubernetes labels the portal puts on the cluster's namespaces."""
    return sorted(
        {
            key
            for m in rendered.manifests
            if m.kind == "Namespace"
            for key in m.body["metadata"]["labels"]
        }
    )


def observe(source: MetricSource, *, at: dt.datetime, label_keys: list[str]) -> Observed:
    """Read from ``source``'s Prometheus, at ``at``, what the cluster holds: a handful of
    instant queries, each filtered by the source's label filters. ``label_keys``: the
    Kubernetes labels of the namespaces to read. Raises :class:`metering.collector.
    PrometheusError` (what to do about it in its message) when Prometheus cannot be read,
    and :class:`NothingToCompare` when it holds no namespace of the cluster at all
    (kube-state-metrics not scraped, or label filters that match nothing): then nothing
    can be said, and no object is called missing."""
    url = collector.base_url(source)
    filters = dict(source.label_filters or {})
    params = {"time": f"{at.timestamp():.3f}", "timeout": f"{settings.METERING_QUERY_TIMEOUT_S}s"}
    observed = Observed()
    label_names = {drift_promql.ksm_label(key): key for key in label_keys}

    with collector.client(source) as prometheus:

        def query(promql: str) -> list[dict]:
            try:
                return prometheus.custom_query(promql, params=params)
            except (requests.exceptions.RequestException, PrometheusApiClientException) as exc:
                raise collector.PrometheusError(collector._explain(exc, url)) from exc
            except ValueError as exc:  # an answer that is not JSON
                raise collector.PrometheusError(
                    f"Prometheus at {url} sent an unreadable answer."
                ) from exc

        for series in query(drift_promql.namespace_phases(filters)):
            labels = series["metric"]
            observed.phases.setdefault(labels.get("namespace", ""), set()).add(
                labels.get("phase", "")
            )
        if not observed.phases:
            where = f" with {label_matchers(filters).rstrip(',')}" if filters else ""
            raise NothingToCompare(
                f"Prometheus at {url} holds no {drift_promql.NAMESPACE_PHASE} series{where} "
                "at all, so nothing of the cluster can be compared: is kube-state-metrics "
                "scraped, and do the metric source's label filters name this cluster?"
            )
        if label_names:
            for series in query(drift_promql.namespace_labels(filters, list(label_names))):
                labels = series["metric"]
                held = observed.namespace_labels.setdefault(labels.get("namespace", ""), {})
                for name in label_names:
                    held.setdefault(name, set()).add(labels.get(name, ""))
        for series in query(drift_promql.resource_quotas(filters)):
            labels = series["metric"]
            key = (labels.get("namespace", ""), labels.get("resourcequota", ""))
            observed.quotas.setdefault(key, {}).setdefault(labels.get("resource", ""), set()).add(
                _number(series["value"][1])
            )
        for series in query(drift_promql.queue_statuses(filters)):
            labels = series["metric"]
            observed.queue_statuses.setdefault(labels.get("cluster_queue", ""), set()).add(
                labels.get("status", "")
            )
        for limit, metric in drift_promql.QUEUE_LIMITS.items():
            by_queue = observed.queue_limits.setdefault(limit, {})
            for series in query(drift_promql.queue_limits(metric, filters)):
                labels = series["metric"]
                queue = labels.get("cluster_queue", "")
                key = (labels.get("flavor", ""), labels.get("resource", ""))
                by_queue.setdefault(queue, {}).setdefault(key, set()).add(
                    _number(series["value"][1])
                )
                if limit == "nominalQuota":
                    observed.queue_cohorts.setdefault(queue, set()).add(labels.get("cohort", ""))

    observed.warnings = _warnings(observed, label_names, filters)
    return observed


def _warnings(observed: Observed, label_names: dict[str, str], filters: dict) -> list[str]:
    """What looks like Prometheus not being given the series, rather than drift."""
    warnings = []
    exported = {
        name
        for labels in observed.namespace_labels.values()
        for name, values in labels.items()
        if values - {""}
    }
    if label_names and not exported:
        warnings.append(
            "No namespace carries any of the portal's labels in kube_namespace_labels: "
            "kube-state-metrics must be started with "
            f"{drift_promql.namespace_labels_allowlist(list(label_names.values()))}."
        )
    if observed.queue_statuses and not observed.queue_limits.get("nominalQuota"):
        warnings.append(
            "Kueue reports its ClusterQueues but not their quotas: set "
            "metrics.enableClusterQueueResources: true in Kueue's manager configuration."
        )
    return warnings


def _joined(values: set[str]) -> str:
    shown = sorted(v if v else ABSENT for v in values)
    return " or ".join(shown) if shown else ABSENT


def _numbers(values: set[Decimal]) -> str:
    return " or ".join(sorted({_text(v) for v in values})) if values else ABSENT


def _compare_numbers(
    findings: list[Finding],
    kind: str,
    namespace: str,
    name: str,
    field_name: str,
    wanted: Decimal | None,
    found: set[Decimal] | None,
) -> None:
    if wanted is None and not found:
        return
    if wanted is not None and found and all(_same(wanted, f) for f in found):
        return
    findings.append(
        Finding(
            kind,
            namespace,
            name,
            field_name,
            NOT_SET if wanted is None else _text(wanted),
            _numbers(found or set()),
        )
    )


def _namespace(m: Manifest, observed: Observed) -> list[Finding]:
    name = m.name
    phases = observed.phases.get(name)
    if not phases:
        return [Finding("Namespace", "", name, OBJECT_FIELD, PRESENT, ABSENT)]
    findings = []
    if phases != {ACTIVE_PHASE}:
        findings.append(Finding("Namespace", "", name, "phase", ACTIVE_PHASE, _joined(phases)))
    held = observed.namespace_labels.get(name, {})
    for key, value in sorted(m.body["metadata"]["labels"].items()):
        found = held.get(drift_promql.ksm_label(key), set())
        if found != {value}:
            findings.append(Finding("Namespace", "", name, f"label {key}", value, _joined(found)))
    return findings


def _resource_quota(m: Manifest, observed: Observed) -> list[Finding]:
    found = observed.quotas.get((m.namespace, m.name))
    if not found:
        return [Finding("ResourceQuota", m.namespace, m.name, OBJECT_FIELD, PRESENT, ABSENT)]
    findings: list[Finding] = []
    wanted = {r: Decimal(v) for r, v in m.body["spec"]["hard"].items()}
    for resource in sorted(set(wanted) | set(found)):
        _compare_numbers(
            findings,
            "ResourceQuota",
            m.namespace,
            m.name,
            f"hard {resource}",
            wanted.get(resource),
            found.get(resource),
        )
    return findings


def _cluster_queue(m: Manifest, observed: Observed) -> list[Finding]:
    name, spec = m.name, m.body["spec"]
    statuses = observed.queue_statuses.get(name)
    if not statuses:
        return [Finding("ClusterQueue", "", name, OBJECT_FIELD, PRESENT, ABSENT)]
    findings = []
    held = spec.get("stopPolicy") == "Hold"
    if statuses != {HELD_STATUS if held else ACTIVE_STATUS}:
        findings.append(
            Finding(
                "ClusterQueue",
                "",
                name,
                "status",
                WANTED_HELD if held else ACTIVE_STATUS,
                _joined(statuses),
            )
        )
    nominal = observed.queue_limits.get("nominalQuota", {}).get(name, {})
    cohorts = observed.queue_cohorts.get(name)
    if cohorts and cohorts != {spec.get("cohort", "")}:
        findings.append(
            Finding(
                "ClusterQueue", "", name, "cohort", spec.get("cohort") or ABSENT, _joined(cohorts)
            )
        )
    wanted: dict[str, dict[tuple[str, str], Decimal]] = defaultdict(dict)
    for group in spec["resourceGroups"]:
        for flavor in group["flavors"]:
            for quota in flavor["resources"]:
                key = (flavor["name"], quota["name"])
                for limit in drift_promql.QUEUE_LIMITS:
                    if limit in quota:
                        wanted[limit][key] = Decimal(quota[limit])
    for key in sorted(set(wanted["nominalQuota"]) | set(nominal)):
        _compare_numbers(
            findings,
            "ClusterQueue",
            "",
            name,
            f"nominalQuota {key[0]}/{key[1]}",
            wanted["nominalQuota"].get(key),
            nominal.get(key),
        )
    # Only limits the portal sets are compared, and only where Kueue reports them: an
    # unset limit is reported as +Inf by recent Kueue and as 0 by older ones, and the
    # lending limits only with the LendingLimit feature gate.
    for limit in ("borrowingLimit", "lendingLimit"):
        reported = observed.queue_limits.get(limit, {}).get(name, {})
        for key, value in sorted(wanted[limit].items()):
            if key in reported:
                _compare_numbers(
                    findings,
                    "ClusterQueue",
                    "",
                    name,
                    f"{limit} {key[0]}/{key[1]}",
                    value,
                    reported[key],
                )
    return findings


_COMPARE = {
    "Namespace": _namespace,
    "ResourceQuota": _resource_quota,
    "ClusterQueue": _cluster_queue,
}


def compare(rendered: ClusterManifests, observed: Observed) -> dict[str, list[Finding]]:
    """The findings of each department that has objects in the cluster (an empty list:
    in sync), by department slug."""
    findings: dict[str, list[Finding]] = {}
    for m in rendered.manifests:
        if m.department is None:
            continue
        found = findings.setdefault(m.department, [])
        if m.kind in _COMPARE:
            found.extend(_COMPARE[m.kind](m, observed))
    return findings


def verdict(findings: list) -> Verdict:
    """In sync, missing (an object is absent: it outweighs the rest) or drifted."""
    if not findings:
        return Verdict.IN_SYNC
    if any(f.field == OBJECT_FIELD for f in findings):
        return Verdict.MISSING
    return Verdict.DRIFTED
