"""Operations that change departments. Each owns its transaction."""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError, Q

from departments.models import Cluster, Department, GpuClass, Namespace

DEPARTMENT_FIELDS = ("name", "slug", "cost_centre", "parent", "active", "billing_contact_email")

# Key of the PostgreSQL advisory lock that serialises changes to the hierarchy.
HIERARCHY_LOCK_KEY = 0x6770_7564  # "gpud"


def department_hierarchy_lock() -> None:
    """Serialise parent changes until the current transaction ends.

    Two edits that each look fine alone (A under B, B under A) would make a loop when they
    commit together; under this lock the second one sees the first and is refused. On
    PostgreSQL this is a transaction-scoped advisory lock; SQLite transactions already run
    one writer at a time (the portal opens them IMMEDIATE).
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("department_hierarchy_lock() must run inside a transaction")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [HIERARCHY_LOCK_KEY])


@transaction.atomic
def department_create(
    *,
    name: str,
    slug: str,
    cost_centre: str,
    parent: Department | None = None,
    active: bool = True,
    billing_contact_email: str = "",
    namespaces: Iterable[str] = (),
) -> Department:
    """Create a department that owns ``namespaces``; all or nothing."""
    department = Department(
        name=name,
        slug=slug,
        cost_centre=cost_centre,
        parent=parent,
        active=active,
        billing_contact_email=billing_contact_email,
    )
    department.full_clean()
    department.save()
    department_set_namespaces(department=department, namespaces=namespaces)
    return department


@transaction.atomic
def department_update(
    *, department: Department, namespaces: Iterable[str] | None = None, **fields
) -> Department:
    """Change the given fields of ``department`` (and its namespaces when given).

    A new parent is checked under :func:`department_hierarchy_lock`, so concurrent edits
    can never close a loop."""
    unknown = set(fields) - set(DEPARTMENT_FIELDS)
    if unknown:
        raise TypeError(f"department_update() got unknown fields: {sorted(unknown)}")
    if "parent" in fields:
        department_hierarchy_lock()
    for name, value in fields.items():
        setattr(department, name, value)
    department.full_clean()
    department.save()
    if namespaces is not None:
        department_set_namespaces(department=department, namespaces=namespaces)
    return department


# Key of the PostgreSQL advisory lock that serialises namespace claims.
NAMESPACE_CLAIM_LOCK_KEY = 0x6770_756E  # "gpun"


def _namespace_claims_lock() -> None:
    """Serialise namespace claims until the current transaction ends: a claim in every
    cluster and a claim in one cluster of the same name overlap, which no unique
    constraint can see, so two departments claiming them at once must take turns."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [NAMESPACE_CLAIM_LOCK_KEY])


def namespace_parse(text: str) -> tuple[str | None, str]:
    """``prod-eu/dept-marketing`` -> (``prod-eu``, ``dept-marketing``); a bare name is in
    every cluster (``None``)."""
    cluster, _, name = text.strip().rpartition("/")
    return (cluster or None), name


@transaction.atomic
def department_set_namespaces(*, department: Department, namespaces: Iterable[str]) -> None:
    """Make ``namespaces`` exactly the Kubernetes namespaces ``department`` owns.

    Each is a name (claimed in every cluster) or ``<cluster slug>/<name>`` (in that
    cluster). A namespace another department owns (there, or in every cluster) is refused,
    never moved silently: IT removes it there first. Claims take turns
    (:func:`_namespace_claims_lock`), so two departments cannot both claim one.
    """
    _namespace_claims_lock()
    clusters = dict(Cluster.objects.values_list("slug", "pk"))
    wanted: dict[tuple[int | None, str], str] = {}
    errors = []
    for text in dict.fromkeys(namespaces):
        slug, name = namespace_parse(text)
        if slug is not None and slug not in clusters:
            known = ", ".join(sorted(clusters)) or "none yet"
            errors.append(f"{text}: no cluster “{slug}” (known: {known}).")
            continue
        try:
            Namespace(name=name, department=department).clean_fields(
                exclude=["department", "cluster"]
            )
        except ValidationError as exc:
            errors.extend(f"{text}: {message}" for message in exc.message_dict.get("name", []))
            continue
        wanted[(clusters.get(slug), name)] = text
    names = {name for _, name in wanted}
    for claim in (
        Namespace.objects.select_related("department", "cluster")
        .filter(name__in=names)
        .exclude(department=department)
    ):
        overlaps = any(
            name == claim.name and (cluster is None or claim.cluster_id in (None, cluster))
            for cluster, name in wanted
        )
        if overlaps:
            errors.append(f"{claim.label} already belongs to {claim.department}.")
    if errors:
        raise ValidationError({"namespaces": errors})

    kept = Q()
    for cluster, name in wanted:
        kept |= Q(name=name, cluster=cluster) if cluster else Q(name=name, cluster__isnull=True)
    department.namespaces.exclude(kept if wanted else Q(pk__in=[])).delete()
    existing = set(department.namespaces.values_list("cluster_id", "name"))
    new = [
        Namespace(name=name, cluster_id=cluster, department=department)
        for cluster, name in wanted
        if (cluster, name) not in existing
    ]
    try:
        with transaction.atomic():
            Namespace.objects.bulk_create(new)
    except IntegrityError as exc:
        # Another department claimed one of them between our check and our insert.
        raise ValidationError(
            {"namespaces": ["One of these namespaces was just given to another department."]}
        ) from exc


@transaction.atomic
def gpu_class_delete(*, gpu_class: GpuClass) -> None:
    """Delete a GPU class nothing refers to.

    Quotas protect their class by foreign key; service levels refer to classes through a
    many-to-many table that would silently lose the row, so they are checked here and
    refuse the deletion the same way (``ProtectedError``) rather than shrink an SLA.
    """
    service_levels = list(gpu_class.service_levels.select_related("department").select_for_update())
    if service_levels:
        raise ProtectedError(
            f"{gpu_class} is allowed by service levels; remove it from them first.",
            set(service_levels),
        )
    gpu_class.delete()
