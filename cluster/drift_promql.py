"""The PromQL that reads back what a cluster holds: kube-state-metrics' namespaces and
ResourceQuotas, Kueue's ClusterQueues.

Every selector starts with the metric source's label filters (``{"cluster": "prod-eu"}``
on a shared Thanos), escaped by :func:`metering.promql.label_matchers`; the few fixed
values are escaped the same way. Nothing from the portal's own data (a cost centre, a
namespace) is ever put into a query: the answers are matched in Python.

What IT must switch on for these series to exist:

- kube-state-metrics exports a namespace's labels only where allowed:
  ``--metric-labels-allowlist=namespaces=[app.kubernetes.io/managed-by,<prefix>/department,
  <prefix>/cost-centre]`` (see :func:`namespace_labels_allowlist`);
- Kueue exports the ClusterQueues' quotas only with ``metrics.enableClusterQueueResources:
  true`` in its manager configuration, and the lending limits only with its
  ``LendingLimit`` feature gate (on by default since Kueue 0.9).
"""

import re

from metering.promql import LABEL_NAME_RE, escape_label_value, label_matchers

NAMESPACE_PHASE = "kube_namespace_status_phase"
NAMESPACE_LABELS = "kube_namespace_labels"
RESOURCE_QUOTA = "kube_resourcequota"
QUEUE_STATUS = "kueue_cluster_queue_status"
QUEUE_NOMINAL_QUOTA = "kueue_cluster_queue_nominal_quota"
QUEUE_BORROWING_LIMIT = "kueue_cluster_queue_borrowing_limit"
QUEUE_LENDING_LIMIT = "kueue_cluster_queue_lending_limit"
QUEUE_LIMITS = {
    "nominalQuota": QUEUE_NOMINAL_QUOTA,
    "borrowingLimit": QUEUE_BORROWING_LIMIT,
    "lendingLimit": QUEUE_LENDING_LIMIT,
}

_NOT_IN_A_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")


def ksm_label(key: str) -> str:
    """The label kube-state-metrics gives a Kubernetes label ``key`` on
    ``kube_namespace_labels``: ``app.kubernetes.io/managed-by`` ->
    ``label_app_kubernetes_io_managed_by`` (every character that cannot be in a Prometheus
    label name becomes ``_``)."""
    return "label_" + _NOT_IN_A_LABEL_NAME.sub("_", key)


def namespace_labels_allowlist(keys: list[str]) -> str:
    """The kube-state-metrics flag that exports ``keys`` of every namespace."""
    return f"--metric-labels-allowlist=namespaces=[{','.join(sorted(keys))}]"


def _selector(metric: str, filters: dict[str, str], **fixed: str) -> str:
    matchers = label_matchers(filters) + "".join(
        f"{name}={escape_label_value(value)}," for name, value in sorted(fixed.items())
    )
    return f"{metric}{{{matchers}}}"


def namespace_phases(filters: dict[str, str]) -> str:
    """Each namespace's current phase (kube-state-metrics reports 1 for it, 0 for the
    others); a namespace that does not exist has no series."""
    return f"{_selector(NAMESPACE_PHASE, filters)} == 1"


def namespace_labels(filters: dict[str, str], label_names: list[str]) -> str:
    """Each namespace's exported labels, only ``label_names`` of them kept."""
    for name in label_names:
        if not LABEL_NAME_RE.match(name):
            raise ValueError(f"{name!r} is not a Prometheus label name.")
    by = ", ".join(["namespace", *sorted(label_names)])
    return f"max by ({by}) ({_selector(NAMESPACE_LABELS, filters)})"


def resource_quotas(filters: dict[str, str]) -> str:
    """The hard limits of every ResourceQuota, by namespace, quota and resource."""
    return (
        "max by (namespace, resourcequota, resource) "
        f"({_selector(RESOURCE_QUOTA, filters, type='hard')})"
    )


def queue_statuses(filters: dict[str, str]) -> str:
    """Each ClusterQueue's status: Kueue reports 1 for the current one of pending, active
    and terminating, 0 for the others; a ClusterQueue that does not exist has no series."""
    return f"{_selector(QUEUE_STATUS, filters)} == 1"


def queue_limits(metric: str, filters: dict[str, str]) -> str:
    """A ClusterQueue quota ``metric`` by queue, cohort, flavor and resource."""
    if metric not in QUEUE_LIMITS.values():
        raise ValueError(f"{metric} is not one of Kueue's ClusterQueue quota metrics.")
    return f"max by (cluster_queue, cohort, flavor, resource) ({_selector(metric, filters)})"
