"""Kubernetes objects checked against the real API schema, and kustomize builds, for tests.

``validate(doc)`` checks one object against the OpenAPI schema of Kubernetes
``KUBERNETES_VERSION`` that the ``kubernetes_validate`` package ships, in its strict form:
an unknown field (a typo, a field of a newer release, one at the wrong level) fails, as it
would with ``kubectl apply --validate=strict``. Kinds that CRDs define (Kueue, the
Prometheus Operator, Argo CD, Flux) have no schema there: those named in ``CUSTOM_KINDS``
get their ``metadata`` checked against Kubernetes' ObjectMeta (strict) and their
``apiVersion``, ``kind`` and ``spec`` shape; any other unknown kind fails.

``kustomize_build(path)`` runs ``kubectl kustomize`` (the kustomize built into kubectl) and
returns the objects it prints. ``kubectl_binary()`` finds kubectl: ``KUBECTL`` names it,
else ``PATH``; ``.ci/run`` installs one where none is found. Where kubectl is missing the
test that needs it is skipped saying why, unless ``PORTAL_REQUIRE_SERVICES=1`` (CI), where
it fails (``require_kubectl``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from functools import cache
from os import PathLike
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils

__all__ = [
    "CUSTOM_KINDS",
    "KUBERNETES_VERSION",
    "KubectlMissing",
    "kubectl_binary",
    "kustomize_build",
    "require_kubectl",
    "validate",
]

# The Kubernetes release the README names, whose schemas every object must meet.
KUBERNETES_VERSION = "1.33.0"

# Kinds defined by CustomResourceDefinitions, by API group: no schema of theirs ships with
# kubernetes_validate, so only their metadata and shape are checked. Anything else that has
# no schema is an error (a typo in apiVersion or kind).
CUSTOM_KINDS: dict[str, frozenset[str]] = {
    "kueue.x-k8s.io": frozenset(
        {"ResourceFlavor", "ClusterQueue", "LocalQueue", "WorkloadPriorityClass"}
    ),
    "monitoring.coreos.com": frozenset({"PodMonitor", "ServiceMonitor", "PrometheusRule"}),
    "argoproj.io": frozenset({"Application", "AppProject", "ApplicationSet"}),
    "source.toolkit.fluxcd.io": frozenset({"GitRepository", "OCIRepository"}),
    "kustomize.toolkit.fluxcd.io": frozenset({"Kustomization"}),
}

# The kustomize built into kubectl 1.27 and newer (v5): the Components and `labels:` that
# deploy/ uses are not in the older ones (Debian 12's kubectl 1.20 has kustomize v2).
MIN_KUSTOMIZE_MAJOR = 5

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


class KubectlMissing(RuntimeError):
    """No usable kubectl on this machine."""


def validate(doc: dict[str, Any]) -> None:
    """Check one Kubernetes object against the strict schema of ``KUBERNETES_VERSION``.

    Raises AssertionError naming the object (kind/namespace/name) and the path of the
    first error in it, e.g. ``Deployment gpu-portal/portal-web:
    spec.template.spec.containers.0: Additional properties are not allowed ('imagePull'
    was unexpected)``."""
    if not isinstance(doc, dict):
        raise AssertionError(f"not a Kubernetes object (a mapping): {doc!r:.200}")
    missing = [key for key in ("apiVersion", "kind", "metadata") if key not in doc]
    if missing:
        raise AssertionError(f"{_name(doc)}: missing {', '.join(missing)}")
    group = doc["apiVersion"].rpartition("/")[0] if "/" in doc["apiVersion"] else ""
    if doc["kind"] in CUSTOM_KINDS.get(group, ()):
        _validate_custom(doc)
        return
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        raise AssertionError(
            f"{_name(doc)}: {_path(error)}: {error.message} "
            f"(Kubernetes {error.version}, strict schema)"
        ) from None
    except kubernetes_validate.SchemaNotFoundError as error:
        raise AssertionError(
            f"{_name(doc)}: {error.message}; if a CRD defines it, add it to "
            "tests.kubernetes_schema.CUSTOM_KINDS"
        ) from None


def _validate_custom(doc: dict[str, Any]) -> None:
    """A CRD's object: metadata as Kubernetes' ObjectMeta (strict), an apiVersion of form
    group/version, and a mapping (or nothing) for spec."""
    if not re.fullmatch(r"[a-z0-9.-]+/v[0-9]+((alpha|beta)[0-9]+)?", doc["apiVersion"]):
        raise AssertionError(f"{_name(doc)}: apiVersion {doc['apiVersion']!r} is not group/version")
    unknown = set(doc) - {"apiVersion", "kind", "metadata", "spec", "status"}
    if unknown:
        raise AssertionError(f"{_name(doc)}: unknown top-level fields {sorted(unknown)}")
    if not isinstance(doc.get("spec", {}), dict):
        raise AssertionError(f"{_name(doc)}: spec is not a mapping")
    validator = _object_meta_validator()
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc["metadata"]))
    if error is not None:
        path = ".".join(str(part) for part in ("metadata", *error.absolute_path))
        raise AssertionError(f"{_name(doc)}: {path}: {error.message} (ObjectMeta, strict)")


@cache
def _object_meta_validator() -> jsonschema.protocols.Validator:
    """A validator of Kubernetes' ObjectMeta, from the strict definitions of our version."""
    from referencing import Registry, Resource

    version = kv_utils.major_minor(KUBERNETES_VERSION) + ".0"
    definitions = kv_utils.schema_contents(
        f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version
    )
    registry = Resource.from_contents(definitions) @ Registry()
    schema = {"$ref": f"{definitions['$id']}#/$defs/{_OBJECT_META}"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _name(doc: dict[str, Any]) -> str:
    metadata = doc.get("metadata") or {}
    name = metadata.get("name", "<no name>")
    if metadata.get("namespace"):
        name = f"{metadata['namespace']}/{name}"
    return f"{doc.get('kind', '<no kind>')} {name}"


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def kubectl_binary() -> str:
    """The path of a kubectl whose kustomize is new enough; ``KUBECTL`` names one, else
    ``PATH``. Raises KubectlMissing saying what was found and how to get one."""
    wanted = os.environ.get("KUBECTL") or "kubectl"
    found = shutil.which(wanted)
    if found is None:
        raise KubectlMissing(
            f"kubectl not found (looked for {wanted!r}; set KUBECTL or put it on PATH; "
            ".ci/run installs one)"
        )
    major = _kustomize_major(found)
    if major < MIN_KUSTOMIZE_MAJOR:
        raise KubectlMissing(
            f"{found} has kustomize v{major}; kubectl kustomize of v{MIN_KUSTOMIZE_MAJOR} or "
            "newer is needed (kubectl 1.27+; .ci/run installs one)"
        )
    return found


@cache
def _kustomize_major(kubectl: str) -> int:
    result = subprocess.run(
        [kubectl, "version", "--client", "--output=json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        version = json.loads(result.stdout).get("kustomizeVersion", "")
    except json.JSONDecodeError:
        version = ""
    found = re.match(r"v(\d+)\.", version)
    return int(found.group(1)) if found else 0


def require_kubectl() -> str:
    """kubectl's path; the test is skipped (or, with PORTAL_REQUIRE_SERVICES=1, fails)
    where there is none."""
    from tests.conftest import require_service

    try:
        return kubectl_binary()
    except KubectlMissing as missing:
        require_service("kubectl", False, str(missing))
        raise  # not reached: require_service skips or fails


def kustomize_build(path: str | PathLike[str]) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize <path>`` builds, in its order. Raises
    AssertionError with kustomize's message when the build fails."""
    return copy.deepcopy(list(_build(os.fspath(Path(path).resolve()))))


@cache
def _build(path: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [kubectl_binary(), "kustomize", path],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed:\n{result.stderr.strip()}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc is not None)
