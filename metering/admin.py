import datetime as dt

from django.contrib import admin, messages
from django.db import transaction
from django.utils import timezone

from core import calendar
from core.admin_site import DateHierarchyInRange, ReadOnlyModelAdmin
from departments.admin import AuditHistoryAdmin
from metering import tasks
from metering.models import MeteringRun, MetricSource, UsageRecord
from metering.selectors import UNALLOCATED, UNKNOWN_MODEL


def _queue_pull(source_id: int, start: dt.datetime, end: dt.datetime) -> None:
    transaction.on_commit(
        lambda: tasks.pull_window.delay(source_id, start.isoformat(), end.isoformat())
    )


class ReadOnlyAdmin(DateHierarchyInRange, ReadOnlyModelAdmin):
    """The ledger is written by metering runs only; the admin shows it."""

    def has_repull_permission(self, request) -> bool:
        return request.user.has_perm("metering.change_metricsource")


@admin.register(MetricSource)
class MetricSourceAdmin(AuditHistoryAdmin):
    list_display = [
        "name",
        "measure",
        "enabled",
        "is_billing",
        "prometheus",
        "namespace_label",
        "model_label",
        "repull_hours",
    ]
    list_filter = ["enabled", "is_billing", "measure"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "description", "measure", "enabled", "is_billing"]}),
        (
            "Query",
            {"fields": ["query_template", "namespace_label", "model_label", "label_filters"]},
        ),
        ("Prometheus", {"fields": ["prometheus_url", "auth_header", "repull_hours"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]
    actions = ["pull_last_day"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "prometheus_url":
            kwargs["assume_scheme"] = "http"  # in-cluster Prometheus is usually plain HTTP
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="Prometheus")
    def prometheus(self, source) -> str:
        return source.prometheus_url or "PROMETHEUS_URL setting"

    @admin.action(description="Pull the last 24 hours now", permissions=["change"])
    def pull_last_day(self, request, queryset):
        end = calendar.floor_hour(timezone.now()) + calendar.HOUR
        start = end - dt.timedelta(hours=24)
        for source in queryset:
            _queue_pull(source.pk, start, end)
        self.message_user(
            request,
            f"Queued a pull of the last 24 hours for {queryset.count()} source(s); the "
            "metering runs list shows the outcome.",
            messages.SUCCESS,
        )


@admin.register(MeteringRun)
class MeteringRunAdmin(ReadOnlyAdmin):
    list_display = [
        "source",
        "window_start",
        "window_end",
        "trigger",
        "status",
        "duration",
        "queries",
        "series",
        "rows_written",
        "warning_count",
        "short_error",
    ]
    list_filter = ["status", "trigger", "source"]
    date_hierarchy = "started_at"
    list_select_related = ["source"]
    actions = ["repull"]

    @admin.display(description="duration")
    def duration(self, run) -> str:
        return "running" if run.duration_s is None else f"{run.duration_s:.1f} s"

    @admin.display(description="warnings")
    def warning_count(self, run) -> int:
        return len(run.warnings)

    @admin.display(description="error")
    def short_error(self, run) -> str:
        return run.error[:120]

    @admin.action(description="Re-pull the windows of the selected runs", permissions=["repull"])
    def repull(self, request, queryset):
        for run in queryset:
            _queue_pull(run.source_id, run.window_start, run.window_end)
        self.message_user(
            request,
            f"Queued {queryset.count()} re-pull(s); each writes a new run when it is done.",
            messages.SUCCESS,
        )


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = [
        "hour_start",
        "source",
        "namespace",
        "gpu_model",
        "department_or_unallocated",
        "gpu_class_or_unknown",
        "quantity",
        "run",
    ]
    list_filter = [
        "source",
        ("department", admin.RelatedOnlyFieldListFilter),
        ("gpu_class", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["namespace", "gpu_model", "department__name", "department__slug"]
    search_help_text = "Namespace, GPU model or department."
    date_hierarchy = "hour_start"
    # Newest hours first; within an hour, by namespace and model.
    ordering = ["-hour_start", "namespace", "gpu_model"]
    list_select_related = ["source", "department", "gpu_class", "run__source"]
    show_full_result_count = False  # the ledger is large; counting it all is slow

    @admin.display(description="department", ordering="department__name")
    def department_or_unallocated(self, record) -> str:
        return record.department.name if record.department else UNALLOCATED

    @admin.display(description="GPU class", ordering="gpu_class__name")
    def gpu_class_or_unknown(self, record) -> str:
        return record.gpu_class.name if record.gpu_class else UNKNOWN_MODEL
