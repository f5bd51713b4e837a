import json

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core import parsers
from core.api import ModelValidationMixin
from departments.models import Department, GpuClass, Tier
from jobs import runner, selectors
from jobs.models import GenerationJob, JobKind
from jobs.selectors import submit_departments_for_user


class JobKindSerializer(ModelValidationMixin, serializers.ModelSerializer):
    class Meta:
        model = JobKind
        fields = [
            "slug",
            "name",
            "description",
            "argv_template",
            "params_schema",
            "default_gpus",
            "max_runtime_s",
            "allowed_tiers",
            "active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate_slug(self, slug: str) -> str:
        if self.instance is not None and slug != self.instance.slug:
            raise serializers.ValidationError(
                "A kind's slug cannot change: quotas and jobs name it. Create a new kind."
            )
        return slug


class JobOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    url = serializers.CharField()


class JobSerializer(serializers.ModelSerializer):
    department = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    submitter = serializers.SlugRelatedField(slug_field="username", read_only=True)
    kind = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    gpu_class = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    waiting_position = serializers.SerializerMethodField(
        help_text="1 for the department's next waiting job to be released; null unless waiting."
    )
    outputs = serializers.SerializerMethodField(
        help_text="The files the job wrote, and its log, with their download addresses."
    )
    blocking_quota = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = GenerationJob
        fields = [
            "id",
            "department",
            "submitter",
            "kind",
            "params",
            "tier",
            "gpu_class",
            "namespace",
            "gpus",
            "max_runtime_s",
            "priority",
            "off_peak",
            "idempotency_key",
            "state",
            "reason",
            "blocking_quota",
            "blocking_use",
            "waiting_position",
            "submitted_at",
            "admitted_at",
            "started_at",
            "finished_at",
            "cancel_requested_at",
            "worker",
            "attempts",
            "gpu_seconds",
            "gpu_hours_reserved",
            "exit_code",
            "error",
            "log_tail",
            "outputs",
        ]
        read_only_fields = fields

    def get_waiting_position(self, job) -> int | None:
        # Admission knows the place of the job it just made wait (context
        # "waiting_positions", by job id); any other job's is read.
        known = self.context.get("waiting_positions", {})
        if job.pk in known:
            return known[job.pk]
        return selectors.waiting_position(job)

    @extend_schema_field(JobOutputSerializer(many=True))
    def get_outputs(self, job) -> list[dict]:
        names = list(job.result_files or [])
        if job.started_at is not None:
            names.append(runner.LOG_NAME)
        request = self.context.get("request")
        out = []
        for name in names:
            url = reverse("jobs-files", kwargs={"pk": job.pk, "name": name})
            out.append({"name": name, "url": request.build_absolute_uri(url) if request else url})
        return out


class JobRowSerializer(JobSerializer):
    """A job as a row of the CSV or XLSX export: the same columns whatever the jobs listed
    (parameters as one JSON text, outputs as their file names), so a spreadsheet or an
    import that reads the columns by position keeps working."""

    params = serializers.SerializerMethodField(help_text="The parameters, as JSON.")
    outputs = serializers.SerializerMethodField(help_text="File names, separated by spaces.")

    def get_params(self, job) -> str:
        return json.dumps(job.params, sort_keys=True, ensure_ascii=False)

    def get_outputs(self, job) -> str:
        return " ".join(output["name"] for output in super().get_outputs(job))


class JobSubmitSerializer(serializers.Serializer):
    """What a submission names; the service validates the rest against the kind and SLA."""

    department = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Department.objects.none(),
        help_text="Slug of a department you are a manager or member of.",
        error_messages={
            "does_not_exist": "No department “{value}” among yours: you submit only for "
            "your own active departments."
        },
    )
    kind = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=JobKind.objects.all(),
        help_text="Job kind slug.",
        error_messages={
            "does_not_exist": "No job kind “{value}”; GET /api/v1/job-kinds/ lists them."
        },
    )
    params = parsers.JSONField(
        required=False, default=dict, help_text="Parameters, as the kind's JSON schema describes."
    )
    tier = serializers.ChoiceField(choices=Tier.choices)
    gpu_class = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=GpuClass.objects.all(),
        required=False,
        allow_null=True,
        help_text="One of the GPU classes the department's SLA allows for the tier; by "
        "default the allowed class with the most free GPUs.",
        error_messages={"does_not_exist": "No GPU class “{value}”."},
    )
    idempotency_key = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        default="",
        help_text="Submitting again with the same key returns the first job, never a second.",
    )
    off_peak = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Batch only: hold the job until the off-peak hours. By default as the SLA says.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["department"].queryset = submit_departments_for_user(user=request.user)


class JobCancelRefusalSerializer(serializers.Serializer):
    non_field_errors = serializers.ListField(
        child=serializers.CharField(), help_text="Why the job cannot be cancelled."
    )


class JobRefusalQuotaSerializer(serializers.Serializer):
    """The quota that refused a job, and its use when it did; written from the job."""

    id = serializers.IntegerField(source="blocking_quota.pk")
    kind = serializers.CharField(source="blocking_quota.kind")
    job_kind = serializers.CharField(source="blocking_quota.job_kind")
    gpu_class = serializers.CharField(source="blocking_quota.gpu_class.slug", allow_null=True)
    enforcement = serializers.CharField(source="blocking_quota.enforcement")
    limit = serializers.DecimalField(max_digits=12, decimal_places=3, source="blocking_quota.limit")
    use = serializers.DecimalField(
        max_digits=14, decimal_places=3, allow_null=True, source="blocking_use"
    )
    unit = serializers.CharField(source="blocking_quota.unit")

    def to_representation(self, job):
        return None if job.blocking_quota is None else super().to_representation(job)


class JobRefusalSerializer(serializers.Serializer):
    """The 409 answer to a submission a quota refused: written from the refused job."""

    detail = serializers.CharField(source="reason")
    quota = JobRefusalQuotaSerializer(source="*", allow_null=True)
    job = JobSerializer(source="*")
