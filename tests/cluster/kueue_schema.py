"""JSON schemas (Draft 2020-12) of the four Kueue ``kueue.x-k8s.io/v1beta1`` kinds the portal
renders (ResourceFlavor, ClusterQueue, LocalQueue, WorkloadPriorityClass), and
:func:`validate`, which holds a rendered object to them.

Written from Kueue's own sources, in the repository kubernetes-sigs/kueue:

- ``site/content/en/docs/reference/kueue.v1beta1.md`` (commit 00a023194d4d), the API
  reference: the fields of ClusterQueueSpec, ResourceGroup, FlavorQuotas, ResourceQuota,
  ClusterQueuePreemption, BorrowWithinCohort, FlavorFungibility, StopPolicy,
  ResourceFlavorSpec, LocalQueueSpec and WorkloadPriorityClass;
- the kubebuilder markers (patterns, MaxItems, enums, XValidation CEL rules) of
  ``apis/kueue/v1beta1/clusterqueue_types.go``, ``localqueue_types.go`` and
  ``workloadpriorityclass_types.go`` at commit 01ed66fdddfa757b45d1e9126c34218183ca80fd (the
  Kueue line that serves v1beta2 and keeps v1beta1 as a deprecated version, 0.15 on), checked
  against the CRD generated from them at that commit
  (``config/components/crd/bases/kueue.x-k8s.io_clusterqueues.yaml``); of
  ``apis/kueue/v1beta1/resourceflavor_types.go`` at commit 00caa3119fc1; and of
  ``fairsharing_types.go`` at commit 1537f8504d06;
- the ClusterQueue validating webhook (``pkg/webhooks/clusterqueue_webhook.go``): what the
  CRD leaves to it, which JSON Schema cannot say (see :func:`_webhook_rules`).

Where they disagree the types win: the reference page read says a resource group holds up
to 16 covered resources and 16 flavors; the types at 01ed66fd (and their CRD) say 64.

Deliberately stricter than Kubernetes in two ways, because these are the portal's own
objects: ``additionalProperties: false`` at every level (a misspelled field fails here,
where the API server would prune or refuse it), and ``metadata`` limited to the fields the
portal writes (name, namespace for a LocalQueue, labels, annotations). ``status`` is
Kueue's to write and is refused.
"""

import re
from decimal import Decimal

from jsonschema import Draft202012Validator

API_VERSION = "kueue.x-k8s.io/v1beta1"
KINDS = ("ResourceFlavor", "ClusterQueue", "LocalQueue", "WorkloadPriorityClass")

# ClusterQueueReference, CohortReference, ResourceFlavorReference, LocalQueueName,
# TopologyReference: "+kubebuilder:validation:Pattern" and MaxLength=253.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A namespace's name (RFC 1123 label).
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# A label key or a resource name (corev1.ResourceName; the webhook's validateResourceName):
# a qualified name, optionally prefixed by a DNS subdomain and "/".
QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# resource.Quantity as controller-gen writes it into the CRD (x-kubernetes-int-or-string).
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}


def _object(properties: dict, *, required: tuple = (), **more) -> dict:
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    schema.update(more)
    return schema


def _name(pattern: str = DNS_SUBDOMAIN, max_length: int = 253) -> dict:
    return {"type": "string", "pattern": pattern, "maxLength": max_length}


def _enum(*values: str) -> dict:
    return {"type": "string", "enum": list(values)}


# nominalQuota, borrowingLimit, lendingLimit "must be non-negative" (the field docs; the
# webhook's validateResourceQuantity).
NON_NEGATIVE_QUANTITY = {
    "description": "must be a non-negative Kubernetes quantity (an integer, or text like 8, "
    "1500m, 2Ki)",
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": QUANTITY, "not": {"pattern": "^-"}},
    ],
}
LABELS = {
    "type": "object",
    "propertyNames": {"pattern": QUALIFIED_NAME, "maxLength": 317},
    "additionalProperties": {"type": "string", "pattern": LABEL_VALUE, "maxLength": 63},
}
ANNOTATIONS = {
    "type": "object",
    "propertyNames": {"pattern": QUALIFIED_NAME, "maxLength": 317},
    "additionalProperties": {"type": "string"},
}


def _metadata(*, namespaced: bool) -> dict:
    properties = {"name": _name(), "labels": LABELS, "annotations": ANNOTATIONS}
    required = ("name",)
    if namespaced:
        properties["namespace"] = _name(DNS_LABEL, 63)
        required = ("name", "namespace")
    return _object(properties, required=required)


def _top(kind: str, *, namespaced: bool = False, **fields) -> dict:
    required = fields.pop("_required", ("spec",))
    properties = {
        "apiVersion": {"const": API_VERSION},
        "kind": {"const": kind},
        "metadata": _metadata(namespaced=namespaced),
        **fields,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{API_VERSION} {kind}",
        **_object(properties, required=("apiVersion", "kind", "metadata", *required)),
    }


# --- metav1.LabelSelector (ClusterQueueSpec.namespaceSelector) ------------------------------
# The webhook runs metav1 ValidateLabelSelector: In and NotIn need values, Exists and
# DoesNotExist take none.
LABEL_SELECTOR_REQUIREMENT = _object(
    {
        "key": {"type": "string", "pattern": QUALIFIED_NAME},
        "operator": _enum("In", "NotIn", "Exists", "DoesNotExist"),
        "values": {"type": "array", "items": {"type": "string", "pattern": LABEL_VALUE}},
    },
    required=("key", "operator"),
    allOf=[
        {
            "if": {"properties": {"operator": {"enum": ["In", "NotIn"]}}},
            "then": {"required": ["values"], "properties": {"values": {"minItems": 1}}},
            "description": "In and NotIn need values",
        },
        {
            "if": {"properties": {"operator": {"enum": ["Exists", "DoesNotExist"]}}},
            "then": {"properties": {"values": {"maxItems": 0}}},
            "description": "Exists and DoesNotExist take no values",
        },
    ],
)
LABEL_SELECTOR = _object(
    {
        "matchLabels": LABELS,
        "matchExpressions": {"type": "array", "items": LABEL_SELECTOR_REQUIREMENT},
    }
)

# --- ClusterQueue -----------------------------------------------------------------------------
RESOURCE_QUOTA = _object(
    {
        "name": {"type": "string", "pattern": QUALIFIED_NAME},
        "nominalQuota": NON_NEGATIVE_QUANTITY,
        "borrowingLimit": NON_NEGATIVE_QUANTITY,
        "lendingLimit": NON_NEGATIVE_QUANTITY,
    },
    required=("name", "nominalQuota"),
)
FLAVOR_QUOTAS = _object(
    {
        "name": _name(),
        "resources": {"type": "array", "minItems": 1, "maxItems": 64, "items": RESOURCE_QUOTA},
    },
    required=("name", "resources"),
)
RESOURCE_GROUP = _object(
    {
        "coveredResources": {
            "type": "array",
            "minItems": 1,
            "maxItems": 64,
            "items": {"type": "string", "pattern": QUALIFIED_NAME},
        },
        "flavors": {"type": "array", "minItems": 1, "maxItems": 64, "items": FLAVOR_QUOTAS},
    },
    required=("coveredResources", "flavors"),
)
BORROW_WITHIN_COHORT = _object(
    {"policy": _enum("Never", "LowerPriority"), "maxPriorityThreshold": INT32}
)
PREEMPTION = _object(
    {
        "reclaimWithinCohort": _enum("Never", "LowerPriority", "Any"),
        "borrowWithinCohort": BORROW_WITHIN_COHORT,
        "withinClusterQueue": _enum("Never", "LowerPriority", "LowerOrNewerEqualPriority"),
    },
    # CEL: !(self.reclaimWithinCohort == 'Never' && has(self.borrowWithinCohort) &&
    # self.borrowWithinCohort.policy != 'Never'), reclaimWithinCohort defaulting to Never.
    **{
        "if": {
            "required": ["borrowWithinCohort"],
            "properties": {
                "borrowWithinCohort": {
                    "required": ["policy"],
                    "properties": {"policy": {"not": {"const": "Never"}}},
                }
            },
        },
        "then": {
            "required": ["reclaimWithinCohort"],
            "properties": {"reclaimWithinCohort": {"not": {"const": "Never"}}},
        },
        "description": "reclaimWithinCohort=Never and borrowWithinCohort.Policy!=Never",
    },
)
FLAVOR_FUNGIBILITY = _object(
    {
        "whenCanBorrow": _enum("MayStopSearch", "TryNextFlavor", "Borrow"),
        "whenCanPreempt": _enum("MayStopSearch", "TryNextFlavor", "Preempt"),
        "preference": _enum("BorrowingOverPreemption", "PreemptionOverBorrowing"),
    },
    # CEL: !has(self.preference) || (self.whenCanBorrow == 'TryNextFlavor' &&
    # self.whenCanPreempt == 'TryNextFlavor'); neither defaults to TryNextFlavor for both.
    **{
        "if": {"required": ["preference"]},
        "then": {
            "required": ["whenCanBorrow", "whenCanPreempt"],
            "properties": {
                "whenCanBorrow": {"const": "TryNextFlavor"},
                "whenCanPreempt": {"const": "TryNextFlavor"},
            },
        },
        "description": "preference can only be set when both whenCanBorrow and "
        "whenCanPreempt are TryNextFlavor",
    },
)
FAIR_SHARING = _object({"weight": NON_NEGATIVE_QUANTITY})
STOP_POLICY = _enum("None", "Hold", "HoldAndDrain")


def _no_limit(field: str) -> dict:
    """What every resource quota of a ClusterQueue without a cohort must be: without
    ``field``."""
    never = {"not": {"required": [field]}}
    return {
        "properties": {
            "resourceGroups": {
                "items": {
                    "properties": {
                        "flavors": {"items": {"properties": {"resources": {"items": never}}}}
                    }
                }
            }
        }
    }


CLUSTER_QUEUE_SPEC = _object(
    {
        "resourceGroups": {"type": "array", "maxItems": 16, "items": RESOURCE_GROUP},
        "cohort": _name(),
        "queueingStrategy": _enum("StrictFIFO", "BestEffortFIFO"),
        "namespaceSelector": LABEL_SELECTOR,
        "flavorFungibility": FLAVOR_FUNGIBILITY,
        "preemption": PREEMPTION,
        "admissionChecks": {"type": "array", "items": {"type": "string", "maxLength": 316}},
        "admissionChecksStrategy": _object(
            {
                "admissionChecks": {
                    "type": "array",
                    "items": _object(
                        {
                            "name": {"type": "string", "maxLength": 316},
                            "onFlavors": {"type": "array", "items": _name()},
                        },
                        required=("name",),
                    ),
                }
            }
        ),
        "stopPolicy": STOP_POLICY,
        "fairSharing": FAIR_SHARING,
        "admissionScope": _object(
            {"admissionMode": _enum("UsageBasedAdmissionFairSharing", "NoAdmissionFairSharing")},
            required=("admissionMode",),
        ),
    },
    allOf=[
        {
            # CEL on ClusterQueueSpec: "borrowingLimit must be nil when cohort is empty".
            "if": {"not": {"required": ["cohort"]}},
            "then": _no_limit("borrowingLimit"),
            "description": "borrowingLimit must be nil when cohort is empty",
        },
        {
            # The field's doc and the webhook's validateLimit: the same for lendingLimit.
            "if": {"not": {"required": ["cohort"]}},
            "then": _no_limit("lendingLimit"),
            "description": "lendingLimit must be nil when cohort is empty",
        },
        {
            "not": {"required": ["admissionChecks", "admissionChecksStrategy"]},
            "description": "admissionChecks cannot be used along with admissionChecksStrategy",
        },
    ],
)

# --- ResourceFlavor ---------------------------------------------------------------------------
TAINT_EFFECT = _enum("NoSchedule", "PreferNoSchedule", "NoExecute")
TAINT = _object(
    {
        "key": {"type": "string", "pattern": QUALIFIED_NAME},
        "value": {"type": "string", "pattern": LABEL_VALUE, "maxLength": 63},
        "effect": TAINT_EFFECT,
        "timeAdded": {"type": "string"},
    },
    required=("key", "effect"),
)
TOLERATION = _object(
    {
        "key": {"type": "string", "pattern": QUALIFIED_NAME},
        "operator": _enum("Equal", "Exists"),
        "value": {"type": "string"},
        "effect": TAINT_EFFECT,
        "tolerationSeconds": {"type": "integer"},
    },
    allOf=[
        {
            "if": {"not": {"required": ["key"]}},
            "then": {"required": ["operator"], "properties": {"operator": {"const": "Exists"}}},
            "description": "operator must be Exists when 'key' is empty",
        },
        {
            "if": {"required": ["tolerationSeconds"]},
            "then": {"required": ["effect"], "properties": {"effect": {"const": "NoExecute"}}},
            "description": "effect must be 'NoExecute' when 'tolerationSeconds' is set",
        },
        {
            "if": {"required": ["operator"], "properties": {"operator": {"const": "Exists"}}},
            "then": {"not": {"required": ["value"]}},
            "description": "a value must be empty when 'operator' is 'Exists'",
        },
    ],
)
RESOURCE_FLAVOR_SPEC = _object(
    {
        "nodeLabels": {**LABELS, "maxProperties": 8},
        "nodeTaints": {"type": "array", "maxItems": 8, "items": TAINT},
        "tolerations": {"type": "array", "maxItems": 8, "items": TOLERATION},
        "topologyName": _name(),
    },
    # CEL: !has(self.topologyName) || self.nodeLabels.size() >= 1
    **{
        "if": {"required": ["topologyName"]},
        "then": {"required": ["nodeLabels"], "properties": {"nodeLabels": {"minProperties": 1}}},
        "description": "at least one nodeLabel is required when topology is set",
    },
)

# --- LocalQueue -------------------------------------------------------------------------------
LOCAL_QUEUE_SPEC = _object(
    # clusterQueue is "[Required]" in the API reference (the CRD leaves it optional, and a
    # LocalQueue without one admits nothing).
    {"clusterQueue": _name(), "stopPolicy": STOP_POLICY, "fairSharing": FAIR_SHARING},
    required=("clusterQueue",),
)

SCHEMAS: dict[str, dict] = {
    "ResourceFlavor": _top("ResourceFlavor", spec=RESOURCE_FLAVOR_SPEC),
    "ClusterQueue": _top("ClusterQueue", spec=CLUSTER_QUEUE_SPEC),
    # A LocalQueue's name is a LocalQueueName: a DNS subdomain of up to 253, as above.
    "LocalQueue": _top("LocalQueue", namespaced=True, spec=LOCAL_QUEUE_SPEC),
    "WorkloadPriorityClass": _top(
        "WorkloadPriorityClass",
        value=INT32,
        description={"type": "string"},
        _required=("value",),
    ),
}
VALIDATORS = {kind: Draft202012Validator(schema) for kind, schema in SCHEMAS.items()}


# --- What the CRD leaves to CEL over sibling lists, and to the webhook ------------------------
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


def quantity(value: int | str) -> Decimal:
    """A Kubernetes quantity (already matching :data:`QUANTITY`) as a number."""
    if isinstance(value, int):
        return Decimal(value)
    number, suffix = re.fullmatch(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))(.*)", value).groups()
    if suffix in _BINARY:
        return Decimal(number) * _BINARY[suffix]
    if suffix in _DECIMAL:
        return Decimal(number) * _DECIMAL[suffix]
    return Decimal(number + suffix)  # an exponent: 1e3, 5E-2


def _webhook_rules(spec: dict) -> list[tuple[str, str]]:
    """The ClusterQueue rules JSON Schema cannot say, as (path, message):

    - CEL on ResourceGroup: every flavor lists as many resources as ``coveredResources``;
    - the webhook: each flavor's resources are the covered resources in their order, a
      resource and a flavor belong to one group only, ``lendingLimit`` is at most
      ``nominalQuota``, at most 256 flavors and 256 covered resources in all;
    - ``+listType=map +listMapKey=name``: a flavor's resource names are distinct.
    """
    problems = []
    seen_resources: set[str] = set()
    seen_flavors: set[str] = set()
    groups = spec.get("resourceGroups", [])
    for i, group in enumerate(groups):
        here = f"spec.resourceGroups[{i}]"
        covered = group["coveredResources"]
        for j, resource in enumerate(covered):
            if resource in seen_resources:
                problems.append(
                    (f"{here}.coveredResources[{j}]", f"duplicate resource {resource!r}")
                )
            seen_resources.add(resource)
        for j, flavor in enumerate(group["flavors"]):
            at = f"{here}.flavors[{j}]"
            if flavor["name"] in seen_flavors:
                problems.append((f"{at}.name", f"duplicate flavor {flavor['name']!r}"))
            seen_flavors.add(flavor["name"])
            resources = flavor["resources"]
            if len(resources) != len(covered):
                problems.append(
                    (
                        f"{at}.resources",
                        f"flavors must have the same number of resources as the "
                        f"coveredResources ({len(resources)} for {len(covered)})",
                    )
                )
            names = [r["name"] for r in resources]
            for k, name in enumerate(names):
                if name in names[:k]:
                    problems.append((f"{at}.resources[{k}].name", f"duplicate {name!r}"))
                elif k < len(covered) and name != covered[k]:
                    problems.append(
                        (
                            f"{at}.resources[{k}].name",
                            f"{name!r} must match the name in coveredResources ({covered[k]!r})",
                        )
                    )
            for k, r in enumerate(resources):
                if "lendingLimit" in r and quantity(r["lendingLimit"]) > quantity(
                    r["nominalQuota"]
                ):
                    problems.append(
                        (
                            f"{at}.resources[{k}].lendingLimit",
                            "must be less than or equal to the nominalQuota",
                        )
                    )
    for what, total in (
        ("flavors", sum(len(g["flavors"]) for g in groups)),
        ("covered resources", sum(len(g["coveredResources"]) for g in groups)),
    ):
        if total > 256:
            problems.append(
                (
                    "spec.resourceGroups",
                    f"total number of {what} across all resourceGroups must be ≤ 256, got {total}",
                )
            )
    return problems


def _path(parts) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(the object)"


def _rule(error, schema: dict) -> str | None:
    """The rule an error breaks, where the schema names one: the ``description`` beside an
    if/then (jsonschema reports a failed "then" as the errors inside it) or a ``not``."""
    node, rule = schema, None
    for part in error.absolute_schema_path:
        if isinstance(node, dict) and part in ("then", "not") and node.get("description"):
            rule = node["description"]
        node = node[part]
    return rule


_SIZES = {
    "maxItems": ("items", "at most"),
    "minItems": ("items", "at least"),
    "maxProperties": ("entries", "at most"),
    "minProperties": ("entries", "at least"),
}


def _describe(error, schema: dict) -> str:
    parts = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        return "; ".join(f"{_path([*parts, k])}: unknown field" for k in extra)
    if error.validator in _SIZES:
        what, bound = _SIZES[error.validator]
        return f"{_path(parts)}: {len(error.instance)} {what}, {bound} {error.validator_value}"
    if error.validator == "anyOf" and error.schema.get("description"):
        return f"{_path(parts)}: {error.instance!r} {error.schema['description']}"
    rule = _rule(error, schema)
    if error.validator == "not" and rule:
        # {"not": {"required": [field]}}: the field that must not be there is the path.
        refused = error.validator_value.get("required", [])
        return f"{_path([*parts, *refused[:1]])}: {rule}"
    return f"{_path(parts)}: " + (f"{rule} ({error.message})" if rule else error.message)


def problems(doc: dict) -> list[str]:
    """Every way ``doc`` breaks its kind's schema or Kueue's further rules, each as
    ``path: message``; empty when it is valid."""
    if not isinstance(doc, dict):
        return [f"(the object): not a mapping but {type(doc).__name__}"]
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") not in SCHEMAS:
        return [
            f"apiVersion/kind: {doc.get('apiVersion')}/{doc.get('kind')} is none of the "
            f"{API_VERSION} kinds {', '.join(KINDS)}"
        ]
    schema = SCHEMAS[doc["kind"]]
    errors = sorted(VALIDATORS[doc["kind"]].iter_errors(doc), key=lambda e: list(map(str, e.path)))
    found = [_describe(e, schema) for e in errors]
    if not found and doc["kind"] == "ClusterQueue":
        # The further rules read the structure the schema has vouched for.
        found = [f"{path}: {message}" for path, message in _webhook_rules(doc["spec"])]
    return found


def validate(doc: dict) -> None:
    """Raise AssertionError naming the object (kind and name) and each failing path when
    ``doc`` is not a valid Kueue v1beta1 object of the four kinds."""
    found = problems(doc)
    if found:
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        name = "/".join(str(p) for p in (meta.get("namespace"), meta.get("name")) if p)
        kind = doc.get("kind") if isinstance(doc, dict) else None
        raise AssertionError(f"{kind} {name or '(no name)'}: " + "; ".join(found))
