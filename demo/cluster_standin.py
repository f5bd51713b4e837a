"""What kube-state-metrics and Kueue would say of a cluster that applied what the portal
renders, for the demo's Prometheus to scrape: a laptop has no Kubernetes, and without these
series the drift check has nothing to compare.

At each scrape it renders the portal's objects (``cluster.manifests.render``) and exports
them as the cluster would hold them, with one hand edit planted so that the demo shows what
drift looks like: someone raised Marketing's ResourceQuota in the cluster from the portal's
8 T4s to 12 (``HAND_EDITS``). A held queue reads ``pending``, as Kueue reports a stopped
ClusterQueue.
"""

import logging

from django.db import connections
from prometheus_client.core import GaugeMetricFamily

from cluster import manifests
from cluster.drift_promql import (
    NAMESPACE_LABELS,
    NAMESPACE_PHASE,
    QUEUE_LIMITS,
    QUEUE_STATUS,
    RESOURCE_QUOTA,
    ksm_label,
)

logger = logging.getLogger(__name__)

# (namespace, ResourceQuota, resource) -> the hard limit someone set in the cluster by hand.
HAND_EDITS = {("dept-marketing", "gpu", "requests.nvidia.com/gpu"): 12}
KUEUE_STATUSES = ("pending", "active", "terminating")


class ClusterStandIn:
    """A prometheus-client collector of the series the portal's drift check reads."""

    def collect(self):
        try:
            fleet = manifests.render()
        except manifests.RenderError as exc:
            logger.warning("The demo cluster stands still: %s", exc)
            return
        finally:
            # A scrape is a thread of its own: its connection goes with it.
            connections.close_all()
        objects = [m for c in fleet.clusters for m in c.manifests]
        namespaces = [m for m in objects if m.kind == "Namespace"]
        label_keys = sorted({key for m in namespaces for key in m.body["metadata"]["labels"]})
        phase = GaugeMetricFamily(
            NAMESPACE_PHASE, "kubernetes namespace status phase.", labels=["namespace", "phase"]
        )
        labels = GaugeMetricFamily(
            NAMESPACE_LABELS,
            "Kubernetes labels converted to Prometheus labels.",
            labels=["namespace", *(ksm_label(k) for k in label_keys)],
        )
        for m in namespaces:
            for name in ("Active", "Terminating"):
                phase.add_metric([m.name, name], 1 if name == "Active" else 0)
            given = m.body["metadata"]["labels"]
            labels.add_metric([m.name, *(given.get(k, "") for k in label_keys)], 1)
        quota = GaugeMetricFamily(
            RESOURCE_QUOTA,
            "Information about resource quota.",
            labels=["namespace", "resourcequota", "resource", "type"],
        )
        for m in objects:
            if m.kind != "ResourceQuota":
                continue
            for resource, value in m.body["spec"]["hard"].items():
                hard = HAND_EDITS.get((m.namespace, m.name, resource), float(value))
                quota.add_metric([m.namespace, m.name, resource, "hard"], hard)
                quota.add_metric([m.namespace, m.name, resource, "used"], 0)
        status = GaugeMetricFamily(
            QUEUE_STATUS,
            "Reports 'cluster_queue' with its 'status' (with possible values 'pending', "
            "'active' or 'terminated').",
            labels=["cluster_queue", "status"],
        )
        limits = {
            field: GaugeMetricFamily(
                metric,
                f"Reports the cluster_queue's resource {field}.",
                labels=["cohort", "cluster_queue", "flavor", "resource"],
            )
            for field, metric in QUEUE_LIMITS.items()
        }
        for m in objects:
            if m.kind != "ClusterQueue":
                continue
            spec = m.body["spec"]
            current = "pending" if spec.get("stopPolicy", "None") != "None" else "active"
            for name in KUEUE_STATUSES:
                status.add_metric([m.name, name], 1 if name == current else 0)
            for group in spec["resourceGroups"]:
                for flavor in group["flavors"]:
                    for resource in flavor["resources"]:
                        for field, family in limits.items():
                            if field in resource:
                                family.add_metric(
                                    [spec["cohort"], m.name, flavor["name"], resource["name"]],
                                    float(resource[field]),
                                )
        yield from (phase, labels, quota, status, *limits.values())
