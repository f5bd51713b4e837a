from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api import ModelValidationMixin
from departments import services
from departments.models import (
    NAMESPACE_NAME_RE,
    Cluster,
    Department,
    GpuClass,
    OffPeakWindow,
    Quota,
    ServiceLevel,
    WorkerPool,
)
from departments.selectors import department_ids_for_user, department_roles_for_user


def _request_user(serializer):
    request = serializer.context.get("request")
    return request.user if request is not None else None


# A namespace in every cluster ("dept-marketing") or in one ("prod-eu/dept-marketing").
QUALIFIED_NAMESPACE_RE = r"^(?:[-a-zA-Z0-9_]+/)?" + NAMESPACE_NAME_RE.removeprefix("^")


class NamespaceNamesField(serializers.ListField):
    """The department's Kubernetes namespaces: ``name`` (in every cluster) or
    ``<cluster slug>/<name>`` (in that cluster)."""

    child = serializers.RegexField(
        QUALIFIED_NAMESPACE_RE,
        max_length=63 + 1 + 63,
        error_messages={
            "invalid": "Give a namespace name (lower-case letters, digits and hyphens), or "
            "<cluster>/<name> for one cluster."
        },
    )

    def to_representation(self, namespaces):
        return [namespace.label for namespace in namespaces.all()]


@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$",
        "example": "23:00:00",
    }
)
class WallClockTimeField(serializers.TimeField):
    """A time of day on the wall clock of a time zone given beside it: HH:MM[:SS], with no
    UTC offset (OpenAPI's ``format: time`` is RFC 3339's, which requires one)."""


class DepartmentSerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(
        slug_field="slug", queryset=Department.objects.all(), allow_null=True, required=False
    )
    namespaces = NamespaceNamesField(
        required=False,
        help_text="Kubernetes namespaces the department owns: a name (in every cluster) or "
        "<cluster>/<name> (in one); a namespace belongs to at most one department.",
    )
    my_role = serializers.SerializerMethodField(
        help_text="Your role in this department (manager or member), if any."
    )

    class Meta:
        model = Department
        fields = [
            "slug",
            "name",
            "cost_centre",
            "billing_contact_email",
            "parent",
            "namespaces",
            "active",
            "my_role",
            "created_at",
            "updated_at",
        ]

    def get_my_role(self, department) -> str | None:
        user = _request_user(self)
        return department_roles_for_user(user=user).get(department.pk) if user else None

    def to_representation(self, department):
        data = super().to_representation(department)
        # A parent the user may not see stays unnamed: nothing about another department leaks.
        visible = department_ids_for_user(user=_request_user(self))
        if visible is not None and department.parent_id not in visible:
            data["parent"] = None
        return data

    def create(self, validated_data):
        return services.department_create(**validated_data)

    def update(self, department, validated_data):
        return services.department_update(department=department, **validated_data)


class GpuClassSerializer(ModelValidationMixin, serializers.ModelSerializer):
    physical_class = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=GpuClass.objects.filter(physical_class__isnull=True),
        allow_null=True,
        required=False,
        help_text="For a MIG profile or a time-sliced replica: the slug of the whole-GPU "
        "class it is cut from; null for whole GPUs.",
        error_messages={"does_not_exist": "No whole-GPU class “{value}”."},
    )

    class Meta:
        model = GpuClass
        fields = [
            "slug",
            "name",
            "model_regex",
            "gpu_product",
            "capacity_gpus",
            "physical_class",
            "fraction_numerator",
            "fraction_denominator",
            "mig_profile",
            "queue_prefix",
            "description",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {"queue_prefix": {"required": False}}


class ClusterSerializer(ModelValidationMixin, serializers.ModelSerializer):
    class Meta:
        model = Cluster
        fields = ["slug", "name", "description", "created_at", "updated_at"]


class WorkerPoolSerializer(ModelValidationMixin, serializers.ModelSerializer):
    """A namespace where the portal's GPU workers run (in one cluster, or in every one)."""

    cluster = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Cluster.objects.all(),
        allow_null=True,
        required=False,
        help_text="Cluster slug; null: the namespace in every cluster.",
        error_messages={"does_not_exist": "No cluster “{value}”; GET /api/v1/clusters/."},
    )
    label = serializers.CharField(read_only=True, help_text="namespace or cluster/namespace.")

    class Meta:
        model = WorkerPool
        fields = ["id", "namespace", "cluster", "label", "description", "created_at", "updated_at"]


class QuotaSerializer(ModelValidationMixin, serializers.ModelSerializer):
    department = serializers.SlugRelatedField(slug_field="slug", queryset=Department.objects.all())
    gpu_class = serializers.SlugRelatedField(
        slug_field="slug", queryset=GpuClass.objects.all(), allow_null=True, required=False
    )
    alert_thresholds_pct = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=1000),
        required=False,
        help_text="Managers are notified once per period when use reaches each percentage.",
    )
    unit = serializers.CharField(read_only=True)
    period = serializers.CharField(
        read_only=True, allow_null=True, help_text="month, day, or null for at-once limits."
    )

    class Meta:
        model = Quota
        fields = [
            "id",
            "department",
            "kind",
            "job_kind",
            "gpu_class",
            "limit",
            "unit",
            "period",
            "enforcement",
            "alert_thresholds_pct",
            "created_at",
            "updated_at",
        ]


class ServiceLevelSerializer(ModelValidationMixin, serializers.ModelSerializer):
    department = serializers.SlugRelatedField(slug_field="slug", queryset=Department.objects.all())
    gpu_classes = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=GpuClass.objects.all(),
        many=True,
        allow_empty=False,
        help_text="GPU classes this tier's work may run on.",
    )
    queues = serializers.SerializerMethodField(
        help_text="The Celery queues this tier's work is sent to, one per allowed GPU class."
    )

    class Meta:
        model = ServiceLevel
        fields = [
            "id",
            "department",
            "tier",
            "priority",
            "latency_target_ms",
            "max_queue_wait_s",
            "gpu_classes",
            "queues",
            "preemptible",
            "hold_for_off_peak",
            "created_at",
            "updated_at",
        ]

    def get_queues(self, service_level) -> list[str]:
        return [gpu.queue_for(service_level.tier) for gpu in service_level.gpu_classes.all()]


class OffPeakWindowSerializer(ModelValidationMixin, serializers.ModelSerializer):
    weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6),
        allow_empty=False,
        required=False,
        help_text="Days on which the window opens, 0 (Monday) to 6 (Sunday).",
    )
    start_time = WallClockTimeField(help_text="When the window opens, in its time zone.")
    end_time = WallClockTimeField(
        help_text="When it closes, in its time zone; on the next day when not after start_time."
    )
    is_open_now = serializers.SerializerMethodField()

    class Meta:
        model = OffPeakWindow
        fields = [
            "id",
            "name",
            "weekdays",
            "start_time",
            "end_time",
            "time_zone",
            "price_multiplier",
            "active",
            "is_open_now",
            "created_at",
            "updated_at",
        ]

    def get_is_open_now(self, window) -> bool:
        return window.active and window.contains(timezone.now())
