from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import JSONField
from django.forms import widgets

from core import parsers
from core.admin_site import DateHierarchyInRange, ReadOnlyModelAdmin
from departments.admin import AuditHistoryAdmin
from jobs import services
from jobs.models import GenerationJob, JobKind, QuotaAlert


class PrettyJSONWidget(widgets.Textarea):
    def format_value(self, value):
        import json

        try:
            return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            return value


@admin.register(JobKind)
class JobKindAdmin(AuditHistoryAdmin):
    list_display = ["name", "slug", "default_gpus", "max_runtime_s", "tiers", "active"]
    list_filter = ["active"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    formfield_overrides = {
        JSONField: {
            "form_class": parsers.JSONFormField,
            "widget": PrettyJSONWidget(attrs={"rows": 12, "cols": 90}),
        }
    }
    fieldsets = [
        (None, {"fields": ["name", "slug", "description", "active"]}),
        ("Command", {"fields": ["argv_template", "params_schema"]}),
        ("Defaults", {"fields": ["default_gpus", "max_runtime_s", "allowed_tiers"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # Quotas name a kind by its slug: renaming it would silently free them.
        return [*self.readonly_fields, "slug"] if obj is not None else self.readonly_fields

    def get_prepopulated_fields(self, request, obj=None):
        return {} if obj is not None else self.prepopulated_fields

    @admin.display(description="tiers")
    def tiers(self, kind) -> str:
        return ", ".join(kind.allowed_tiers)


@admin.register(GenerationJob)
class GenerationJobAdmin(DateHierarchyInRange, admin.ModelAdmin):
    """Jobs are written by admission and workers; the admin shows them and cancels or
    requeues through the services."""

    list_display = [
        "short_id",
        "department",
        "kind",
        "tier",
        "gpu_class",
        "state",
        "priority",
        "submitter",
        "submitted_at",
        "gpu_seconds",
        "attempts",
    ]
    list_filter = ["state", "department", "kind", "tier", "gpu_class"]
    search_fields = ["id", "submitter__username", "reason", "worker", "idempotency_key"]
    date_hierarchy = "submitted_at"
    list_select_related = ["department", "kind", "gpu_class", "submitter"]
    actions = ["cancel_jobs", "requeue_jobs"]
    readonly_fields = [f.name for f in GenerationJob._meta.fields]
    fieldsets = [
        (None, {"fields": ["id", "department", "submitter", "kind", "params", "state", "reason"]}),
        (
            "Placement",
            {
                "fields": [
                    "tier",
                    "gpu_class",
                    "namespace",
                    "gpus",
                    "max_runtime_s",
                    "priority",
                    "off_peak",
                    "idempotency_key",
                    "blocking_quota",
                    "blocking_use",
                ]
            },
        ),
        (
            "Times",
            {
                "fields": [
                    "submitted_at",
                    "admitted_at",
                    "queued_at",
                    "dispatched_at",
                    "started_at",
                    "heartbeat_at",
                    "finished_at",
                    "cancel_requested_at",
                    "cancelled_by",
                ]
            },
        ),
        (
            "Run",
            {
                "fields": [
                    "worker",
                    "attempts",
                    "gpu_seconds",
                    "gpu_hours_reserved",
                    "exit_code",
                    "result_files",
                    "error",
                    "log_tail",
                ]
            },
        ),
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def _each(self, request, queryset, operation, verb: str) -> None:
        done, refused = 0, []
        for job in queryset:
            try:
                operation(job=job, user=request.user)
                done += 1
            except (ValidationError, PermissionDenied) as exc:
                refused.append(f"{job.short_id}: {' '.join(getattr(exc, 'messages', [str(exc)]))}")
        if done:
            self.message_user(request, f"{done} job(s) {verb}.", messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.WARNING)

    @admin.action(description="Cancel the selected jobs", permissions=["change"])
    def cancel_jobs(self, request, queryset):
        self._each(request, queryset, services.job_cancel, "cancelled or asked to stop")

    @admin.action(description="Requeue the selected jobs", permissions=["change"])
    def requeue_jobs(self, request, queryset):
        self._each(request, queryset, services.job_requeue, "requeued")


@admin.register(QuotaAlert)
class QuotaAlertAdmin(ReadOnlyModelAdmin):
    list_display = ["quota", "period", "threshold_pct", "use", "limit", "created_at"]
    list_filter = ["period", "threshold_pct", "quota__department"]
    readonly_fields = [f.name for f in QuotaAlert._meta.fields]
