"""Drift in the admin, for IT: read-only, written by the checks alone."""

from django.contrib import admin

from cluster.models import DriftCheck, DriftFinding
from core.admin_site import DateHierarchyInRange, ReadOnlyModelAdmin


class OpenFilter(admin.SimpleListFilter):
    title = "open"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", "Open"), ("no", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(DriftFinding)
class DriftFindingAdmin(DateHierarchyInRange, ReadOnlyModelAdmin):
    list_display = [
        "cluster",
        "department",
        "kind",
        "namespace",
        "name",
        "field",
        "wanted",
        "found",
        "first_seen",
        "last_seen",
        "resolved_at",
        "notified_at",
    ]
    list_filter = ["cluster", "department", OpenFilter, "kind"]
    list_select_related = ["department"]
    search_fields = ["namespace", "name", "field", "wanted", "found", "department__name"]
    date_hierarchy = "first_seen"
    readonly_fields = [f.name for f in DriftFinding._meta.fields]


@admin.register(DriftCheck)
class DriftCheckAdmin(ReadOnlyModelAdmin):
    list_display = ["cluster", "at", "status", "findings_open", "finished_at", "error"]
    list_filter = ["cluster", "status"]
    readonly_fields = [f.name for f in DriftCheck._meta.fields]
