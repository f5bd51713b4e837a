"""The shared helper tests/kubernetes_schema.py: it accepts a good object and rejects a bad
one with the object's kind, name and the path of the error; kubectl kustomize builds."""

import copy

import pytest

from tests.kubernetes_schema import kustomize_build, require_kubectl, validate

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "gpu-portal", "labels": {"app": "web"}},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "example/web:1"}]},
        },
    },
}
POD_MONITOR = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "PodMonitor",
    "metadata": {"name": "workers", "namespace": "gpu-workers"},
    "spec": {"podMetricsEndpoints": [{"port": "metrics"}]},
}


def test_a_valid_object_passes():
    validate(copy.deepcopy(DEPLOYMENT))
    validate(copy.deepcopy(POD_MONITOR))


def test_an_unknown_field_fails_with_the_object_and_its_path():
    doc = copy.deepcopy(DEPLOYMENT)
    doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(AssertionError) as failed:
        validate(doc)
    message = str(failed.value)
    assert "Deployment gpu-portal/web" in message
    assert "spec.template.spec.containers.0" in message
    assert "imagePullPolicyy" in message


def test_a_wrong_type_fails():
    doc = copy.deepcopy(DEPLOYMENT)
    doc["spec"]["replicas"] = "two"
    with pytest.raises(AssertionError, match=r"spec\.replicas"):
        validate(doc)


def test_a_missing_required_field_fails():
    doc = copy.deepcopy(DEPLOYMENT)
    del doc["spec"]["selector"]
    with pytest.raises(AssertionError, match="selector"):
        validate(doc)


def test_a_kind_without_schema_fails_unless_allowlisted():
    with pytest.raises(AssertionError, match=r"Couldn't find schema.*CUSTOM_KINDS"):
        validate({"apiVersion": "v1", "kind": "ConfigMapp", "metadata": {"name": "x"}})
    with pytest.raises(AssertionError, match="CUSTOM_KINDS"):
        validate({**POD_MONITOR, "apiVersion": "monitoring.coreos.com.typo/v1"})


def test_a_custom_kind_has_its_metadata_checked():
    doc = copy.deepcopy(POD_MONITOR)
    doc["metadata"]["labels"] = {"release": 1}
    with pytest.raises(AssertionError, match=r"PodMonitor gpu-workers/workers: metadata\.labels"):
        validate(doc)
    doc = copy.deepcopy(POD_MONITOR)
    doc["metadata"]["nmae"] = "typo"
    with pytest.raises(AssertionError, match="nmae"):
        validate(doc)
    doc = copy.deepcopy(POD_MONITOR)
    doc["specs"] = {}
    with pytest.raises(AssertionError, match="specs"):
        validate(doc)


def test_kustomize_build_returns_the_objects(tmp_path):
    require_kubectl()
    (tmp_path / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  A: b\n"
    )
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [cm.yaml]\nnamespace: gpu-portal\nnamePrefix: portal-\n"
    )
    [doc] = kustomize_build(tmp_path)
    assert doc["metadata"] == {"name": "portal-settings", "namespace": "gpu-portal"}
    validate(doc)


def test_kustomize_build_fails_with_kustomizes_message(tmp_path):
    require_kubectl()
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(AssertionError, match=r"kubectl kustomize .* failed"):
        kustomize_build(tmp_path)
