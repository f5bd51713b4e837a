"""deploy/: every kustomize directory builds with the real kubectl, every object meets the
Kubernetes API schema (strict), and the production overlay holds what running the portal
needs: one beat, a probed web, a GPU worker pool per GPU class and tier on the right nodes,
the migrate Job first, default-deny network policies, secrets by reference only."""

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from departments.models import LABEL_VALUE_RE, GpuClass, Tier
from tests.deploy import manifests as m
from tests.kubernetes_schema import kustomize_build, require_kubectl, validate

# The kustomize builds are cached per process: keep these tests on one xdist worker.
pytestmark = pytest.mark.xdist_group("deploy-manifests")

# The GPU classes the production overlay runs workers for, with their nodes' product label.
PRODUCTION_CLASSES = {"a100": "NVIDIA-A100-SXM4-80GB", "t4": "Tesla-T4"}
MANAGED_BY = ("app.kubernetes.io/managed-by", "gpu-chargeback-portal")


@pytest.fixture(autouse=True)
def _kubectl():
    require_kubectl()


@pytest.fixture(scope="module")
def with_components(tmp_path_factory):
    """The production overlay with every component added."""
    require_kubectl()
    return m.build_with_components(tmp_path_factory.mktemp("overlay"), m.PRODUCTION, COMPONENTS)


def _rel(path: Path) -> str:
    return str(path.relative_to(m.REPO))


KUSTOMIZATIONS = [d for d in m.kustomize_directories() if m.kustomization_kind(d) != "Component"]
COMPONENTS = [d for d in m.kustomize_directories() if m.kustomization_kind(d) == "Component"]


def test_the_directories_are_found():
    found = {_rel(d) for d in KUSTOMIZATIONS}
    assert {
        "deploy/base",
        "deploy/overlays/production",
        "deploy/components/cluster-sync",
    } <= found
    assert {_rel(d) for d in COMPONENTS} == {"deploy/components/prometheus-operator"}


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_rel)
def test_every_kustomization_builds_and_validates(directory):
    docs = kustomize_build(directory)
    assert docs, f"{_rel(directory)} builds nothing"
    for doc in docs:
        validate(doc)


@pytest.mark.parametrize("directory", COMPONENTS, ids=_rel)
def test_every_component_builds_onto_production_and_validates(directory, tmp_path):
    docs = m.build_with_components(tmp_path, m.PRODUCTION, [directory])
    added = len(docs) - len(m.production())
    assert added > 0, f"{_rel(directory)} adds nothing"
    for doc in docs:
        validate(doc)


def test_no_two_objects_of_production_share_a_name():
    keys = Counter(
        (doc["apiVersion"], doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])
        for doc in m.production()
    )
    assert [key for key, count in keys.items() if count > 1] == []


# --- the processes ---------------------------------------------------------------------


def test_exactly_one_beat_that_never_overlaps_its_successor():
    docs = m.production()
    beats = [
        (doc, container)
        for doc in docs
        for container in m.containers(doc)
        if "beat" in m.argv(container) and "celery" in m.argv(container)
    ]
    assert len(beats) == 1, [m.name(doc) for doc, _ in beats]
    [(beat, _)] = beats
    assert beat["kind"] == "Deployment"
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    scaled = [
        doc
        for doc in m.of_kind(docs, "HorizontalPodAutoscaler")
        if doc["spec"]["scaleTargetRef"]["name"] == beat["metadata"]["name"]
    ]
    assert scaled == []


def _web():
    [web] = [d for d in m.of_kind(m.production(), "Deployment") if m.component(d) == "web"]
    [container] = m.containers(web, init=False)
    return web, container


def test_web_is_gunicorn_probed_on_healthz():
    _, container = _web()
    assert m.argv(container)[:2] == ["gunicorn", "portal.wsgi:application"]
    assert "--bind=0.0.0.0:8000" in m.argv(container)
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/healthz", probe
        assert m.port_number(container, check["port"]) == 8000, probe
        # /healthz still checks the host: the probe's Host must be an allowed one.
        [host] = [h["value"] for h in check.get("httpHeaders", []) if h["name"] == "Host"]
        assert host in _config(m.PORTAL_NAMESPACE)["ALLOWED_HOSTS"].split(",")
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind


def _config(namespace: str) -> dict[str, str]:
    [config] = [
        d
        for d in m.of_kind(m.production(), "ConfigMap")
        if d["metadata"]["name"] == "portal-config" and d["metadata"]["namespace"] == namespace
    ]
    return config["data"]


def test_the_web_service_and_the_ingress_reach_the_web():
    docs = m.production()
    web, container = _web()
    pod_labels = web["spec"]["template"]["metadata"]["labels"]
    [service] = [
        d for d in m.of_kind(docs, "Service") if m.selects(d["spec"]["selector"], pod_labels)
    ]
    [port] = service["spec"]["ports"]
    assert m.port_number(container, port["targetPort"]) == 8000
    [ingress] = m.of_kind(docs, "Ingress")
    assert ingress["metadata"]["namespace"] == service["metadata"]["namespace"]
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in _config(m.PORTAL_NAMESPACE)["ALLOWED_HOSTS"].split(",")
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"] in ({"name": port["name"]}, {"number": port["port"]})


def test_the_default_worker_consumes_the_celery_queue():
    workers = [
        (doc, m.celery_queues(container))
        for doc in m.of_kind(m.production(), "Deployment")
        for container in m.containers(doc)
        if m.celery_queues(container) and "celery" in m.celery_queues(container)
    ]
    assert [(m.name(doc), queues) for doc, queues in workers] == [
        ("Deployment gpu-portal/portal-worker", ["celery"])
    ]


def _gpu_worker_pools() -> dict[str, tuple[dict, dict]]:
    """Every Deployment consuming a gpu.* queue, by queue."""
    pools = {}
    for doc in m.of_kind(m.production(), "Deployment"):
        for container in m.containers(doc):
            for queue in m.celery_queues(container) or []:
                if queue.startswith("gpu."):
                    assert queue not in pools, f"{queue} is consumed twice"
                    pools[queue] = (doc, container)
    return pools


def test_a_gpu_worker_pool_per_class_and_tier_on_its_nodes():
    pools = _gpu_worker_pools()
    wanted = {}
    for slug, product in PRODUCTION_CLASSES.items():
        gpu_class = GpuClass(slug=slug, name=slug.upper(), capacity_gpus=1, gpu_product=product)
        gpu_class.clean()  # the model's own default queue prefix
        assert re.fullmatch(LABEL_VALUE_RE, product), product
        for tier in Tier.values:
            wanted[gpu_class.queue_for(tier)] = product
    assert sorted(pools) == sorted(wanted)
    worker_names = Counter()
    for queue, (doc, container) in pools.items():
        where = f"{m.name(doc)} ({queue})"
        spec = doc["spec"]["template"]["spec"]
        assert doc["metadata"]["namespace"] == m.WORKER_POOL_NAMESPACE, where
        assert spec["nodeSelector"] == {"nvidia.com/gpu.product": wanted[queue]}, where
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
            "tolerations"
        ], where
        resources = container["resources"]
        gpus = int(resources["limits"]["nvidia.com/gpu"])
        assert gpus >= 1, where
        assert int(resources["requests"].get("nvidia.com/gpu", gpus)) == gpus, where
        words = m.argv(container)
        worker_names[words[words.index("-n") + 1]] += 1
    assert [n for n, count in worker_names.items() if count > 1] == []


def test_every_gpu_worker_serves_its_job_counter_and_knows_its_namespace():
    for queue, (doc, container) in _gpu_worker_pools().items():
        where = f"{m.name(doc)} ({queue})"
        env = {e["name"]: e for e in container["env"]}
        port = int(env["JOBS_METRICS_PORT"]["value"])
        assert env["JOBS_METRICS_ADDR"]["value"] == "0.0.0.0", where  # noqa: S104
        assert env["JOBS_WORKER_NAMESPACE"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.namespace"}
        }, where
        assert {"name": "metrics", "containerPort": port} in container["ports"], where
        annotations = doc["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", where
        assert annotations["prometheus.io/port"] == str(port), where
        assert annotations["prometheus.io/path"] == "/metrics", where


def test_the_migrate_job_runs_before_the_web():
    docs = m.production()
    [job] = m.of_kind(docs, "Job")
    [container] = m.containers(job)
    assert m.argv(container) == ["python", "manage.py", "migrate", "--noinput"]
    annotations = job["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "Sync"
    web, _ = _web()
    web_wave = int(web["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", 0))
    assert int(annotations["argocd.argoproj.io/sync-wave"]) < web_wave
    # Whatever applies it, the web waits for the migrations.
    [wait] = web["spec"]["template"]["spec"]["initContainers"]
    assert "manage.py migrate --check" in " ".join(m.argv(wait))
    # What the Job and the Deployments need is there before them.
    for doc in docs:
        if doc["kind"] in ("Namespace", "ConfigMap", "PersistentVolumeClaim"):
            wave = int(doc["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
            assert wave < int(annotations["argocd.argoproj.io/sync-wave"]), m.name(doc)


# --- images, secrets, policies ---------------------------------------------------------


def _portal_containers(docs):
    return [
        (doc, container)
        for doc in docs
        for container in m.containers(doc)
        if container["image"].startswith(m.PORTAL_IMAGE + ":")
    ]


def test_the_base_has_the_placeholder_image_and_production_pins_it():
    base = _portal_containers(kustomize_build(m.DEPLOY / "base"))
    assert {c["image"] for _, c in base} == {f"{m.PORTAL_IMAGE}:latest"}
    production = _portal_containers(m.production())
    images = {c["image"] for _, c in production}
    assert len(images) == 1, images
    [image] = images
    assert not image.endswith(":latest")
    for doc in m.production():
        for container in m.containers(doc):
            assert ":" in container["image"].rsplit("/", 1)[-1], m.name(doc)
            assert not container["image"].endswith(":latest"), m.name(doc)


def test_every_portal_process_gets_its_secrets_by_reference():
    docs = m.production()
    portal = _portal_containers(docs)
    assert len(portal) >= 1 + 1 + 1 + 1 + 1 + 2 * 3  # migrate, wait, web, beat, worker, pools
    for doc, container in portal:
        where = f"{m.name(doc)} container {container['name']}"
        env = {e["name"]: e for e in container.get("env", [])}
        for key in m.REQUIRED_SECRET_KEYS:
            assert env[key] == {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": m.SECRET_NAME, "key": key}},
            }, where
        assert {"configMapRef": {"name": "portal-config"}} in container["envFrom"], where
        assert {"secretRef": {"name": m.SECRET_NAME}} in container["envFrom"], where
    assert [d for d in m.of_kind(docs, "Secret")] == []


def test_no_literal_secret_anywhere_under_deploy(with_components):
    docs = [doc for d in KUSTOMIZATIONS for doc in kustomize_build(d)]
    docs += with_components
    docs += [doc for path in _example_files() for doc in _yaml_documents(path)]
    assert m.literal_secrets(docs) == []


def test_the_secret_scan_finds_what_it_looks_for():
    planted = [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "b"}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c"},
            "data": {"SECRET_KEY": "x"},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "x",
                                "image": "i:1",
                                "env": [
                                    {"name": "DATABASE_URL", "value": "postgres://h/db"},
                                    {"name": "PORTAL_TOKEN", "value": "abc"},
                                    {"name": "BROKER", "value": "redis://u:pw@redis:6379/0"},
                                ],
                            }
                        ]
                    }
                }
            },
        },
    ]
    found = "\n".join(m.literal_secrets(planted))
    for expected in (
        "Secret s",
        "data.SECRET_KEY",
        "env DATABASE_URL",
        "env PORTAL_TOKEN",
        "password",
    ):
        assert expected in found


def test_pods_meet_the_restricted_pod_security_standard_and_have_resources():
    docs = [doc for d in KUSTOMIZATIONS for doc in kustomize_build(d)]
    namespaces = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Namespace"}
    for namespace in namespaces.values():
        labels = namespace["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", m.name(namespace)
    for doc in docs:
        template = m.pod_template(doc)
        if template is None:
            continue
        pod = template["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True, m.name(doc)
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, m.name(doc)
        for container in m.containers(doc):
            where = f"{m.name(doc)} container {container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert "memory" in container["resources"]["limits"], where


def _pods(docs, namespace):
    return [
        (doc, m.pod_template(doc)["metadata"].get("labels", {}))
        for doc in docs
        if m.pod_template(doc) is not None and doc["metadata"].get("namespace") == namespace
    ]


def _allowed(policies, pod_labels, port) -> list[dict]:
    """The ingress rules (with their policies' names) that let traffic reach ``port`` of a
    pod with ``pod_labels``."""
    rules = []
    for policy in policies:
        if not m.selects(policy["spec"]["podSelector"], pod_labels):
            continue
        for rule in policy["spec"].get("ingress", []):
            if any(p.get("port") == port for p in rule.get("ports", [])):
                rules.append(rule)
    return rules


def test_network_policies_deny_ingress_but_the_ingress_controller_and_prometheus():
    docs = m.production()
    for namespace in (m.PORTAL_NAMESPACE, m.WORKER_POOL_NAMESPACE):
        policies = [
            d for d in m.of_kind(docs, "NetworkPolicy") if d["metadata"]["namespace"] == namespace
        ]
        deny = [
            p
            for p in policies
            if p["spec"]["podSelector"] == {}
            and p["spec"]["policyTypes"] == ["Ingress"]
            and not p["spec"].get("ingress")
        ]
        assert deny, f"no default-deny ingress policy in {namespace}"
        # Every allow rule selects pods that exist (a label typo would allow nothing).
        pods = _pods(docs, namespace)
        for policy in policies:
            if policy["spec"]["podSelector"]:
                assert any(
                    m.selects(policy["spec"]["podSelector"], labels) for _, labels in pods
                ), m.name(policy)

    policies = m.of_kind(docs, "NetworkPolicy")
    web, _ = _web()
    web_rules = _allowed(policies, web["spec"]["template"]["metadata"]["labels"], 8000)
    sources = [source for rule in web_rules for source in rule["from"]]
    names = [s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for s in sources]
    assert sorted(names) == ["ingress-nginx", "monitoring"]
    assert [s for s in sources if "ipBlock" in s] == []

    for queue, (doc, container) in _gpu_worker_pools().items():
        port = int({e["name"]: e for e in container["env"]}["JOBS_METRICS_PORT"]["value"])
        rules = _allowed(policies, doc["spec"]["template"]["metadata"]["labels"], port)
        assert rules, f"Prometheus may not scrape {queue}'s port {port}"
        for rule in rules:
            for source in rule["from"]:
                assert source["podSelector"]["matchLabels"] == {
                    "app.kubernetes.io/name": "prometheus"
                }


def test_the_web_is_scraped_on_metrics(with_components):
    web, _ = _web()
    annotations = web["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == 8000
    docs = with_components
    [monitor] = m.of_kind(docs, "ServiceMonitor")
    [service] = [
        d
        for d in m.of_kind(docs, "Service")
        if d["metadata"]["namespace"] == monitor["metadata"]["namespace"]
        and m.selects(monitor["spec"]["selector"], d["metadata"]["labels"])
    ]
    port_names = {p["name"] for p in service["spec"]["ports"]}
    paths = [e["path"] for e in monitor["spec"]["endpoints"] if e["port"] in port_names]
    assert paths == ["/metrics"]


def test_the_pod_monitor_scrapes_every_gpu_worker(with_components):
    docs = with_components
    [monitor] = m.of_kind(docs, "PodMonitor")
    assert monitor["metadata"]["namespace"] == m.WORKER_POOL_NAMESPACE
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    pools = _gpu_worker_pools()
    for queue, (doc, container) in pools.items():
        assert m.selects(monitor["spec"]["selector"], doc["spec"]["template"]["metadata"]["labels"])
        assert endpoint["port"] in {p["name"] for p in container["ports"]}, queue
    selected = [
        doc
        for doc, labels in _pods(docs, m.WORKER_POOL_NAMESPACE)
        if m.selects(monitor["spec"]["selector"], labels)
    ]
    assert len(selected) == len(pools)


def test_nothing_of_the_portal_itself_carries_the_label_the_cluster_sync_prunes_by(
    with_components,
):
    docs = [doc for d in KUSTOMIZATIONS for doc in kustomize_build(d)]
    docs += with_components
    key, value = MANAGED_BY
    assert [m.name(d) for d in docs if d["metadata"].get("labels", {}).get(key) == value] == []


# --- the cluster sync ------------------------------------------------------------------

RENDERED_KINDS = {
    ("", "Namespace"): "namespaces",
    ("", "ResourceQuota"): "resourcequotas",
    ("", "LimitRange"): "limitranges",
    ("kueue.x-k8s.io", "ResourceFlavor"): "resourceflavors",
    ("kueue.x-k8s.io", "ClusterQueue"): "clusterqueues",
    ("kueue.x-k8s.io", "LocalQueue"): "localqueues",
    ("kueue.x-k8s.io", "WorkloadPriorityClass"): "workloadpriorityclasses",
}


def _cluster_sync():
    return kustomize_build(m.DEPLOY / "components" / "cluster-sync")


def test_the_cluster_sync_may_touch_only_the_rendered_kinds():
    docs = _cluster_sync()
    [role] = m.of_kind(docs, "ClusterRole")
    granted = {}
    for rule in role["rules"]:
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
        assert not rule.get("resourceNames") and not rule.get("nonResourceURLs"), rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted[(group, resource)] = set(rule["verbs"])
    assert set(granted) == {(group, plural) for (group, _), plural in RENDERED_KINDS.items()}
    assert granted[("", "namespaces")] == {"get", "list", "create", "patch"}
    for key, verbs in granted.items():
        assert verbs <= {"get", "list", "create", "patch", "delete"}, key
    [binding] = m.of_kind(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    [cronjob] = m.of_kind(docs, "CronJob")
    [account] = binding["subjects"]
    pod = m.pod_template(cronjob)["spec"]
    assert (account["name"], account["namespace"]) == (
        pod["serviceAccountName"],
        cronjob["metadata"]["namespace"],
    )


def test_the_cluster_sync_applies_server_side_and_prunes_only_what_the_portal_made():
    docs = _cluster_sync()
    [cronjob] = m.of_kind(docs, "CronJob")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    [apply] = m.containers(cronjob, init=False)
    args = m.argv(apply)
    assert args[0] == "apply"
    assert "--server-side" in args and "--prune" in args
    assert "--selector=app.kubernetes.io/managed-by=gpu-chargeback-portal" in args
    [role] = m.of_kind(docs, "ClusterRole")
    deletable = {
        (group, resource)
        for rule in role["rules"]
        if "delete" in rule["verbs"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    pruned = [a.split("=", 1)[1] for a in args if a.startswith("--prune-allowlist=")]
    assert pruned, "no --prune-allowlist: kubectl would prune every kind"
    for entry in pruned:
        group, _version, kind = entry.split("/")
        group = "" if group == "core" else group
        assert (group, kind) in RENDERED_KINDS and (group, kind) != ("", "Namespace"), entry
        assert (group, RENDERED_KINDS[(group, kind)]) in deletable, entry
    # The apply reads what the fetch wrote, and the fetch refuses an empty answer.
    [fetch] = m.pod_template(cronjob)["spec"]["initContainers"]
    script = " ".join(m.argv(fetch))
    assert "/api/v1/cluster/manifests/?cluster=" in script
    assert "Authorization: Bearer ${PORTAL_TOKEN}" in script
    assert "exit 1" in script
    [manifests] = [a for a in args if a.startswith("--filename=")]
    mounts = {v["name"]: v["mountPath"] for v in fetch["volumeMounts"]}
    assert manifests.split("=", 1)[1].startswith(mounts["manifests"] + "/")


# --- examples --------------------------------------------------------------------------


def _example_files() -> list[Path]:
    return sorted((m.DEPLOY / "examples").rglob("*.yaml"))


def _yaml_documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


@pytest.mark.parametrize("path", _example_files(), ids=_rel)
def test_every_example_is_valid(path):
    docs = _yaml_documents(path)
    assert docs
    for doc in docs:
        validate(doc)
        if doc["kind"] == "ConfigMap" and "plugin.yaml" in doc.get("data", {}):
            plugin = yaml.safe_load(doc["data"]["plugin.yaml"])
            assert plugin["kind"] == "ConfigManagementPlugin"
            assert "/api/v1/cluster/manifests/" in " ".join(plugin["spec"]["generate"]["args"])


def test_the_flux_example_applies_as_the_cluster_sync_role():
    [role] = m.of_kind(_cluster_sync(), "ClusterRole")
    docs = _yaml_documents(m.DEPLOY / "examples" / "flux" / "cluster-objects.yaml")
    [kustomization] = [d for d in docs if d["kind"] == "Kustomization"]
    [binding] = m.of_kind(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": kustomization["spec"]["serviceAccountName"],
            "namespace": kustomization["metadata"]["namespace"],
        }
    ]


def test_the_argo_cd_project_lets_the_cluster_objects_be_only_the_rendered_kinds():
    docs = _yaml_documents(m.DEPLOY / "examples" / "argocd" / "project.yaml")
    [project] = docs
    spec = project["spec"]
    allowed = {
        (entry["group"], entry["kind"])
        for entry in spec["clusterResourceWhitelist"] + spec["namespaceResourceWhitelist"]
    }
    assert allowed == set(RENDERED_KINDS)
    for path in ("cluster-objects-git.yaml", "cluster-objects-plugin.yaml"):
        applications = [
            d
            for d in _yaml_documents(m.DEPLOY / "examples" / "argocd" / path)
            if d["kind"] == "Application"
        ]
        assert [a["spec"]["project"] for a in applications] == [project["metadata"]["name"]]
