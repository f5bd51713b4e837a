import copy

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from simple_history.admin import SimpleHistoryAdmin
from simple_history.models import DeletedObject
from simple_history.template_utils import HistoricalRecordContextHelper
from simple_history.utils import get_history_model_for_model

from departments import services
from departments.forms import (
    DepartmentAdminForm,
    OffPeakWindowForm,
    QuotaForm,
    QuotaInlineFormSet,
)
from departments.models import (
    Cluster,
    Department,
    GpuClass,
    Membership,
    Namespace,
    OffPeakWindow,
    Quota,
    ServiceLevel,
    WorkerPool,
    overlapping_claim,
)


class _HistoryChangeDisplay(HistoricalRecordContextHelper):
    def prepare_delta_change_value(self, change, value):
        # simple-history shows an empty foreign key as "Deleted <model> (pk=None)".
        if isinstance(value, DeletedObject) and value.pk is None:
            return None
        return super().prepare_delta_change_value(change, value)


class AuditHistoryAdmin(SimpleHistoryAdmin):
    """A model admin whose "History" page lists every recorded version of an object: when,
    who, and which fields changed. Whoever may view the object may read its history.

    The history is a record, never a way back: the revert button is hidden
    (``SIMPLE_HISTORY_REVERT_DISABLED``), a version is shown read-only and never saved, so
    a finalized statement or a past price cannot be brought back through it. A version
    shows only the fields the history keeps: simple-history would fill the others in from
    the current row (a metric source's Authorization header among them)."""

    _showing_a_version = False

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method not in ("GET", "HEAD"):
            raise PermissionDenied("A historical version is read, never restored.")
        # simple-history's view reads prepopulated_fields as an attribute; this request's
        # own copy of the admin shows the version read-only, with nothing to prepopulate.
        version_admin = copy.copy(self)
        version_admin._showing_a_version = True
        version_admin.prepopulated_fields = {}
        return super(AuditHistoryAdmin, version_admin).history_form_view(
            request, object_id, version_id, extra_context
        )

    def get_historical_record_context_helper(self, request, historical_record):
        return _HistoryChangeDisplay(self.model, historical_record)

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        if not self._showing_a_version:
            return readonly
        opts = self.model._meta
        editable = [f.name for f in [*opts.fields, *opts.many_to_many] if f.editable]
        return [*readonly, *(name for name in editable if name not in readonly)]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if not self._showing_a_version:
            return fieldsets
        history_model = get_history_model_for_model(self.model)
        untracked = {
            *history_model._history_excluded_fields,
            *(f.name for f in self.model._meta.many_to_many),
        }

        def kept(names):
            for name in names:
                if isinstance(name, list | tuple):
                    if row := tuple(n for n in name if n not in untracked):
                        yield row
                elif name not in untracked:
                    yield name

        return [
            (title, {**options, "fields": list(kept(options["fields"]))})
            for title, options in fieldsets
        ]


class NamespaceInline(admin.TabularInline):
    model = Namespace
    fields = ["name", "cluster", "tier", "default_gpus"]
    extra = 1
    verbose_name = "Kubernetes namespace"


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]
    fields = ["user", "role", "origin"]
    # Whether IT set it by hand or the identity provider's groups gave it (a sign-in
    # changes only those); one added here is IT's.
    readonly_fields = ["origin"]


class QuotaInline(admin.TabularInline):
    model = Quota
    form = QuotaForm
    formset = QuotaInlineFormSet
    extra = 0
    fields = ["kind", "limit", "job_kind", "gpu_class", "enforcement", "alert_thresholds_pct"]


class ServiceLevelInline(admin.StackedInline):
    model = ServiceLevel
    extra = 0
    fields = [
        ("tier", "priority"),
        ("latency_target_ms", "max_queue_wait_s"),
        "gpu_classes",
        ("preemptible", "hold_for_off_peak"),
    ]


@admin.register(Department)
class DepartmentAdmin(AuditHistoryAdmin):
    form = DepartmentAdminForm
    list_display = [
        "name",
        "slug",
        "cost_centre",
        "parent",
        "namespace_list",
        "member_count",
        "quota_count",
        "active",
    ]
    list_filter = ["active", ("parent", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "slug", "cost_centre", "namespaces__name"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["parent"]
    readonly_fields = ["created_at", "updated_at"]
    fields = [
        "name",
        "slug",
        "cost_centre",
        "billing_contact_email",
        "parent",
        "active",
        "created_at",
        "updated_at",
    ]
    inlines = [NamespaceInline, MembershipInline, QuotaInline, ServiceLevelInline]
    actions = ["deactivate", "activate"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("parent")
            .prefetch_related("namespaces")
            .annotate(
                member_count=Count("memberships", distinct=True),
                quota_count=Count("quotas", distinct=True),
            )
        )

    @admin.display(description="namespaces")
    def namespace_list(self, department) -> str:
        return ", ".join(ns.label for ns in department.namespaces.all()) or "—"

    @admin.display(description="members", ordering="member_count")
    def member_count(self, department) -> int:
        return department.member_count

    @admin.display(description="quotas", ordering="quota_count")
    def quota_count(self, department) -> int:
        return department.quota_count

    @admin.action(
        description="Deactivate selected departments (history is kept)", permissions=["change"]
    )
    def deactivate(self, request, queryset):
        self._set_active(request, queryset, active=False)

    @admin.action(description="Activate selected departments", permissions=["change"])
    def activate(self, request, queryset):
        self._set_active(request, queryset, active=True)

    def _set_active(self, request, queryset, *, active: bool) -> None:
        changed = 0
        for department in queryset.exclude(active=active):
            services.department_update(department=department, active=active)
            changed += 1
        state = "active" if active else "inactive"
        self.message_user(request, f"{changed} department(s) set {state}.", messages.SUCCESS)


@admin.register(Namespace)
class NamespaceAdmin(AuditHistoryAdmin):
    list_display = ["name", "cluster_or_all", "department", "tier"]
    list_filter = ["tier", "cluster", ("department", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "department__name", "cluster__slug"]
    autocomplete_fields = ["department"]
    list_select_related = ["department", "cluster"]

    @admin.display(description="cluster", ordering="cluster__name")
    def cluster_or_all(self, namespace) -> str:
        return str(namespace.cluster) if namespace.cluster_id else "every cluster"


@admin.register(Cluster)
class ClusterAdmin(AuditHistoryAdmin):
    """The fleet's Kubernetes clusters: each has its own billing source (Metering), and
    namespaces and worker pools are claimed in one of them or in all."""

    list_display = ["name", "slug", "namespace_count", "description"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(namespace_count=Count("namespaces"))

    @admin.display(description="namespaces claimed in it", ordering="namespace_count")
    def namespace_count(self, cluster) -> int:
        return cluster.namespace_count


@admin.register(WorkerPool)
class WorkerPoolAdmin(AuditHistoryAdmin):
    """Namespaces where the portal's GPU workers run. Marking one makes the month's bill
    charge its allocation to the departments whose jobs ran there, by the jobs' own GPU
    time, and the rest as pool idle (see Billing)."""

    list_display = ["namespace", "cluster_or_all", "claimed_by", "description"]
    list_filter = ["cluster"]
    search_fields = ["namespace", "cluster__slug", "description"]
    list_select_related = ["cluster"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(description="cluster", ordering="cluster__name")
    def cluster_or_all(self, pool) -> str:
        return str(pool.cluster) if pool.cluster_id else "every cluster"

    @admin.display(description="also claimed by")
    def claimed_by(self, pool) -> str:
        claim = overlapping_claim(
            Namespace.objects.filter(name=pool.namespace).select_related("department"),
            cluster_id=pool.cluster_id,
            pk=None,
        )
        return str(claim.department) if claim else "—"


@admin.register(Membership)
class MembershipAdmin(AuditHistoryAdmin):
    list_display = ["user", "user_full_name", "department", "role"]
    list_filter = ["role", ("department", admin.RelatedOnlyFieldListFilter)]
    search_fields = [
        "user__username",
        "user__first_name",
        "user__last_name",
        "user__email",
        "department__name",
    ]
    autocomplete_fields = ["user", "department"]
    list_select_related = ["user", "department"]

    @admin.display(description="name", ordering="user__last_name")
    def user_full_name(self, membership) -> str:
        return membership.user.get_full_name()


@admin.register(GpuClass)
class GpuClassAdmin(AuditHistoryAdmin):
    list_display = [
        "name",
        "slug",
        "capacity_gpus",
        "fraction_display",
        "mig_profile",
        "model_regex",
        "queue_prefix",
    ]
    list_select_related = ["physical_class"]
    search_fields = ["name", "slug", "model_regex", "mig_profile"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "slug",
                    "model_regex",
                    "gpu_product",
                    "capacity_gpus",
                    "queue_prefix",
                ]
            },
        ),
        (
            "A fraction of a GPU (MIG profile or time-sliced replica)",
            {
                "fields": [
                    "physical_class",
                    ("fraction_numerator", "fraction_denominator"),
                    "mig_profile",
                ],
                "description": "Leave blank for whole GPUs. A MIG class names its profile "
                "(1g.10gb is 1/7 of an A100); a time-sliced class matches the shared model "
                "label (Tesla-T4-SHARED) and holds 1/replicas of a GPU.",
            },
        ),
        (None, {"fields": ["description", "created_at", "updated_at"]}),
    ]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]

    def get_deleted_objects(self, objs, request):
        deletions, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        for gpu_class in objs:
            protected.extend(
                f"Service level: {sla}"
                for sla in gpu_class.service_levels.select_related("department")
            )
        return deletions, counts, perms_needed, protected

    def delete_model(self, request, gpu_class):
        services.gpu_class_delete(gpu_class=gpu_class)

    def delete_queryset(self, request, queryset):
        for gpu_class in queryset:
            services.gpu_class_delete(gpu_class=gpu_class)


@admin.register(Quota)
class QuotaAdmin(AuditHistoryAdmin):
    form = QuotaForm
    list_display = [
        "department",
        "kind",
        "limit_with_unit",
        "job_kind",
        "gpu_class",
        "enforcement",
        "thresholds",
    ]
    list_filter = [
        "kind",
        "enforcement",
        "gpu_class",
        ("department", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["department__name", "department__slug", "job_kind"]
    autocomplete_fields = ["department"]
    list_select_related = ["department", "gpu_class"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(description="limit", ordering="limit")
    def limit_with_unit(self, quota) -> str:
        return quota.limit_text

    @admin.display(description="alerts at")
    def thresholds(self, quota) -> str:
        return ", ".join(f"{pct} %" for pct in quota.alert_thresholds_pct) or "—"


@admin.register(ServiceLevel)
class ServiceLevelAdmin(AuditHistoryAdmin):
    list_display = [
        "department",
        "tier",
        "priority",
        "latency_target_ms",
        "max_queue_wait_s",
        "gpu_class_list",
        "preemptible",
        "hold_for_off_peak",
    ]
    list_filter = [
        "tier",
        "preemptible",
        "hold_for_off_peak",
        "gpu_classes",
        ("department", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["department__name", "department__slug"]
    autocomplete_fields = ["department"]
    filter_horizontal = ["gpu_classes"]
    readonly_fields = ["created_at", "updated_at"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("department")
            .prefetch_related("gpu_classes")
        )

    @admin.display(description="GPU classes")
    def gpu_class_list(self, service_level) -> str:
        return ", ".join(gpu.name for gpu in service_level.gpu_classes.all())


@admin.register(OffPeakWindow)
class OffPeakWindowAdmin(AuditHistoryAdmin):
    form = OffPeakWindowForm
    list_display = [
        "name",
        "weekdays_display",
        "start_time",
        "end_time",
        "time_zone",
        "price_multiplier",
        "active",
    ]
    list_filter = ["active", "time_zone"]
    search_fields = ["name"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(description="days")
    def weekdays_display(self, window) -> str:
        return window.weekdays_display
