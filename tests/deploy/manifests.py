"""What the deploy/ tests read from the built manifests: the kustomize directories under
deploy/, pod templates, containers, and the scan for literal secret values."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.kubernetes_schema import kustomize_build

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PRODUCTION = DEPLOY / "overlays" / "production"
PORTAL_IMAGE = "ghcr.io/example/gpu-chargeback-portal"
PORTAL_NAMESPACE = "gpu-portal"
WORKER_POOL_NAMESPACE = "gpu-workers"
# The settings every portal process needs from the Secret portal-secrets.
REQUIRED_SECRET_KEYS = ("DATABASE_URL", "SECRET_KEY", "CELERY_BROKER_URL")
SECRET_NAME = "portal-secrets"

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}


def kustomize_directories() -> list[Path]:
    """Every directory under deploy/ with a kustomization.yaml, examples excluded."""
    return sorted(path.parent for path in DEPLOY.rglob("kustomization.yaml"))


def kustomization_kind(directory: Path) -> str:
    text = (directory / "kustomization.yaml").read_text(encoding="utf-8")
    return (yaml.safe_load(text) or {}).get("kind", "Kustomization")


def build_with_components(
    tmp_dir: Path, base: Path, components: list[Path]
) -> list[dict[str, Any]]:
    """Build ``base`` with ``components`` added, as an overlay of ``tmp_dir`` would (kustomize
    accepts only relative paths)."""
    lines = ["resources:", f"  - {os.path.relpath(base, tmp_dir)}", "components:"]
    lines += [f"  - {os.path.relpath(component, tmp_dir)}" for component in components]
    (tmp_dir / "kustomization.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return kustomize_build(tmp_dir)


def production() -> list[dict[str, Any]]:
    return kustomize_build(PRODUCTION)


def name(doc: dict[str, Any]) -> str:
    metadata = doc.get("metadata", {})
    namespace = metadata.get("namespace")
    return f"{doc['kind']} {namespace + '/' if namespace else ''}{metadata.get('name')}"


def pod_template(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The pod template of a workload (the pod itself for a Pod), else None."""
    kind = doc.get("kind")
    if kind not in WORKLOAD_KINDS:
        return None
    if kind == "Pod":
        return doc
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]
    return doc["spec"]["template"]


def containers(doc: dict[str, Any], *, init: bool = True) -> list[dict[str, Any]]:
    template = pod_template(doc)
    if template is None:
        return []
    spec = template["spec"]
    found = list(spec.get("containers", []))
    if init:
        found += spec.get("initContainers", [])
    return found


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def component(doc: dict[str, Any]) -> str | None:
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def env_values(container: dict[str, Any]) -> dict[str, str]:
    """The container's env entries that have a literal value."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of command and args from the container's env."""
    return re.sub(
        r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text
    )


def argv(container: dict[str, Any]) -> list[str]:
    env = env_values(container)
    return [expand(part, env) for part in container.get("command", []) + container.get("args", [])]


def celery_queues(container: dict[str, Any]) -> list[str] | None:
    """The queues a ``celery worker`` consumes (-Q / --queues), None when it is not one."""
    words = argv(container)
    if "worker" not in words or not any(word.endswith("celery") for word in words):
        return None
    for i, word in enumerate(words):
        if word in ("-Q", "--queues") and i + 1 < len(words):
            return words[i + 1].split(",")
        if word.startswith(("--queues=", "-Q=")):
            return word.split("=", 1)[1].split(",")
    return ["celery"]  # Celery's default queue


def port_number(container: dict[str, Any], port: int | str) -> int | None:
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return declared["containerPort"]
    return None


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, or a Service's plain mapping) selects labels.
    matchExpressions are not used in deploy/ and select nothing here."""
    match = selector.get("matchLabels", selector) if "matchExpressions" not in selector else None
    if match is None:
        return False
    return all(labels.get(key) == value for key, value in match.items())


# --- literal secrets -------------------------------------------------------------------

SECRET_LOOKING_NAME = re.compile(
    r"SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE_KEY|ACCESS_KEY|CREDENTIAL"
    r"|^(DATABASE_URL|CELERY_BROKER_URL|CACHE_URL|EMAIL_URL)$",
    re.IGNORECASE,
)
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)
PRIVATE_KEY_BLOCK = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def literal_secrets(docs: list[dict[str, Any]]) -> list[str]:
    """Where a secret value is written into the manifests rather than referenced: a Secret
    with data, an env value or a ConfigMap key of a secret-looking name, a URL with a
    password, a private key."""
    found = []
    for doc in docs:
        if doc["kind"] == "Secret" and (doc.get("data") or doc.get("stringData")):
            found.append(f"{name(doc)}: a Secret with values in git")
        if doc["kind"] == "ConfigMap":
            found += [
                f"{name(doc)}: data.{key} looks secret (put it in a Secret)"
                for key in doc.get("data") or {}
                if SECRET_LOOKING_NAME.search(key)
            ]
        for container in containers(doc):
            found += [
                f"{name(doc)}: container {container['name']}: env {key} is a literal value"
                for key, value in env_values(container).items()
                if SECRET_LOOKING_NAME.search(key) and value
            ]
        for path, text in _strings(doc):
            if URL_WITH_PASSWORD.search(text):
                found.append(f"{name(doc)}: {path}: a URL with a password")
            if PRIVATE_KEY_BLOCK.search(text):
                found.append(f"{name(doc)}: {path}: a private key")
    return found


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}.{i}")
