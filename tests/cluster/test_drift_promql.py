"""The queries that read a cluster back: kube-state-metrics' label names, and label filters
escaped so that a value with quotes cannot break (or widen) a query. The real Prometheus
answers them in tests/integration/test_cluster_drift_from_prometheus.py."""

import pytest

from cluster import drift_promql


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("app.kubernetes.io/managed-by", "label_app_kubernetes_io_managed_by"),
        ("gpu-chargeback-portal/department", "label_gpu_chargeback_portal_department"),
        ("gpu-chargeback-portal/cost-centre", "label_gpu_chargeback_portal_cost_centre"),
        ("already_fine", "label_already_fine"),
    ],
)
def test_kubernetes_labels_are_named_as_kube_state_metrics_names_them(key, label):
    assert drift_promql.ksm_label(key) == label


def test_the_allowlist_flag_names_every_label_the_portal_sets():
    assert drift_promql.namespace_labels_allowlist(
        ["gpu-chargeback-portal/department", "app.kubernetes.io/managed-by"]
    ) == (
        "--metric-labels-allowlist=namespaces=[app.kubernetes.io/managed-by,"
        "gpu-chargeback-portal/department]"
    )


def test_label_filter_values_are_escaped_in_every_query():
    filters = {"cluster": 'eu"} or vector(1) #\\'}
    escaped = 'cluster="eu\\"} or vector(1) #\\\\",'

    assert drift_promql.namespace_phases(filters) == (
        "kube_namespace_status_phase{" + escaped + "} == 1"
    )
    assert drift_promql.resource_quotas(filters) == (
        "max by (namespace, resourcequota, resource) (kube_resourcequota{"
        + escaped
        + 'type="hard",})'
    )
    assert drift_promql.queue_statuses(filters) == (
        "kueue_cluster_queue_status{" + escaped + "} == 1"
    )
    assert drift_promql.queue_limits(drift_promql.QUEUE_NOMINAL_QUOTA, filters) == (
        "max by (cluster_queue, cohort, flavor, resource) "
        "(kueue_cluster_queue_nominal_quota{" + escaped + "})"
    )
    assert drift_promql.namespace_labels(filters, ["label_b", "label_a"]) == (
        "max by (namespace, label_a, label_b) (kube_namespace_labels{" + escaped + "})"
    )


def test_a_label_name_that_is_not_one_is_refused_rather_than_sent():
    with pytest.raises(ValueError, match="not a Prometheus label name"):
        drift_promql.namespace_labels({}, ["label_ok", "label) or up or (x"])
    with pytest.raises(ValueError, match="not a Prometheus label name"):
        drift_promql.namespace_phases({"bad name": "x"})
    with pytest.raises(ValueError, match="quota metrics"):
        drift_promql.queue_limits("up", {})
