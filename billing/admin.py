"""Finance's workplace for billing: prices, each month's idle-cost policy, statements and
adjustments. Statements are written by :mod:`billing.services` only; the admin shows them,
finalizes them and corrects finalized ones through the services, never by editing rows."""

import json
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.utils.html import format_html

from billing import notifications, pricing, services
from billing.models import (
    Adjustment,
    AlertChannel,
    BillingPeriod,
    Delivery,
    DepartmentMultiplier,
    RateCard,
    Statement,
    StatementLine,
    StatementSending,
    StatementStatus,
    WorkerPoolHour,
)
from billing.notifications_http import UrlRefused
from core.admin_site import DateHierarchyInRange
from departments.admin import AuditHistoryAdmin


@admin.register(RateCard)
class RateCardAdmin(DateHierarchyInRange, AuditHistoryAdmin):
    list_display = [
        "gpu_class",
        "tier_or_every",
        "price_per_gpu_hour",
        "currency",
        "valid_from",
        "valid_to",
        "note",
    ]
    list_filter = ["gpu_class", "tier", "currency"]
    search_fields = ["gpu_class__name", "gpu_class__slug", "note"]
    date_hierarchy = "valid_from"
    list_select_related = ["gpu_class"]
    readonly_fields = ["created_at", "updated_at"]
    fields = [
        "gpu_class",
        "tier",
        ("price_per_gpu_hour", "currency"),
        ("valid_from", "valid_to"),
        "note",
        "created_at",
        "updated_at",
    ]

    @admin.display(description="tier", ordering="tier")
    def tier_or_every(self, card) -> str:
        return card.get_tier_display() if card.tier else "every tier"


@admin.register(DepartmentMultiplier)
class DepartmentMultiplierAdmin(AuditHistoryAdmin):
    list_display = ["department", "multiplier", "reason", "valid_from", "valid_to"]
    list_filter = [("department", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["department__name", "department__slug", "reason"]
    autocomplete_fields = ["department"]
    list_select_related = ["department"]
    readonly_fields = ["created_at", "updated_at"]
    fields = [
        "department",
        "multiplier",
        "reason",
        ("valid_from", "valid_to"),
        "created_at",
        "updated_at",
    ]


# --- Months ---------------------------------------------------------------------------------


class BillingPeriodForm(forms.ModelForm):
    class Meta:
        model = BillingPeriod
        fields = ["idle_policy", "idle_department"]

    def clean(self):
        # Hold the month (as finalizing does) while the policy is checked and saved: a
        # statement finalized meanwhile would keep a policy the month no longer has. The
        # admin's change view is one transaction, so the lock lasts until the save.
        if self.instance.pk is not None:
            BillingPeriod.objects.select_for_update().get(pk=self.instance.pk)
        return super().clean()


class ReadOnlyInline(admin.TabularInline):
    """Rows shown for reading: computed by the services, never added, edited or deleted here."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class StatementOfPeriodInline(ReadOnlyInline):
    model = Statement
    fields = ["department", "status", "gpu_hours", "total", "currency", "finalized_at"]
    readonly_fields = fields
    show_change_link = True
    ordering = ["department__name"]


class FlaggedPoolHourInline(ReadOnlyInline):
    """The month's pool-hours whose jobs used more than the pool's allocation."""

    model = WorkerPoolHour
    verbose_name = "flagged worker pool hour"
    verbose_name_plural = "flagged worker pool hours (jobs beyond the pool's allocation)"
    fields = [
        "namespace",
        "cluster",
        "gpu_class",
        "hour_start",
        "allocation_seconds",
        "jobs_seconds",
        "excess_seconds",
        "tolerance_seconds",
        "cause",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(flagged=True)
            .select_related("cluster", "gpu_class")
        )


@admin.register(BillingPeriod)
class BillingPeriodAdmin(DateHierarchyInRange, AuditHistoryAdmin):
    """A month: its idle-cost policy is finance's to choose until a statement of the month
    is finalized; its figures are computed by :func:`billing.services.period_refresh`."""

    form = BillingPeriodForm
    list_display = [
        "month_label",
        "idle_policy",
        "idle_department",
        "capacity_amount",
        "unallocated_amount",
        "pool_idle_amount",
        "idle_amount",
        "currency",
        "drafts",
        "finalized",
        "computed_at",
    ]
    list_filter = ["idle_policy"]
    list_select_related = ["idle_department"]
    autocomplete_fields = ["idle_department"]
    date_hierarchy = "month"
    actions = ["recompute"]
    inlines = [StatementOfPeriodInline, FlaggedPoolHourInline]
    figures = [*BillingPeriod.FIGURES, "computed_at"]
    fieldsets = [
        (None, {"fields": ["month", "currency", "idle_policy", "idle_department"]}),
        ("Figures", {"fields": figures}),
    ]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                draft_count=Count("statements", filter=Q(statements__status=StatementStatus.DRAFT)),
                finalized_count=Count(
                    "statements", filter=Q(statements__status=StatementStatus.FINALIZED)
                ),
            )
        )

    def get_readonly_fields(self, request, obj=None):
        frozen = ["month", "currency", *self.figures]
        if obj is not None and obj.statements.filter(status=StatementStatus.FINALIZED).exists():
            # A finalized statement keeps the policy it was finalized with.
            frozen += ["idle_policy", "idle_department"]
        return frozen

    def has_add_permission(self, request) -> bool:
        return False  # a month's period is made by the services when it is first priced

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, period, form, change) -> None:
        super().save_model(request, period, form, change)
        if change and form.has_changed():
            services.period_refresh(month=period.month)

    @admin.display(description="month", ordering="month")
    def month_label(self, period) -> str:
        return period.label

    @admin.display(description="drafts", ordering="draft_count")
    def drafts(self, period) -> int:
        return period.draft_count

    @admin.display(description="finalized", ordering="finalized_count")
    def finalized(self, period) -> int:
        return period.finalized_count

    @admin.action(
        description="Recompute the selected months from the ledger", permissions=["change"]
    )
    def recompute(self, request, queryset):
        months = sorted(queryset.values_list("month", flat=True))
        for month in months:
            services.period_refresh(month=month, force=True)
        self.message_user(
            request,
            f"Recomputed {len(months)} month(s): {', '.join(f'{m:%Y-%m}' for m in months)}. "
            "Finalized statements keep their lines; usage they do not hold became adjustments.",
            messages.SUCCESS,
        )


# --- Statements -----------------------------------------------------------------------------


class StatementLineInline(ReadOnlyInline):
    model = StatementLine
    fk_name = "statement"
    fields = [
        "position",
        "kind",
        "description",
        "gpu_class",
        "tier",
        "cluster",
        "job_kind",
        "jobs_count",
        "gpu_hours",
        "unit_price",
        "off_peak_multiplier",
        "department_multiplier",
        "share",
        "list_amount",
        "amount",
        "rate_card",
        "adjustment",
    ]
    readonly_fields = fields
    ordering = ["position", "pk"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("gpu_class", "cluster", "job_kind", "rate_card", "adjustment")
        )


@admin.register(Statement)
class StatementAdmin(AuditHistoryAdmin):
    """Statements follow the ledger while they are drafts and never change once finalized;
    here they are read, and finalized by those who may."""

    list_display = [
        "department",
        "period",
        "status",
        "gpu_hours",
        "total",
        "currency",
        "computed_at",
        "finalized_at",
        "finalized_by_or_portal",
    ]
    list_filter = ["status", "period", ("department", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["department__name", "department__slug", "department__cost_centre"]
    list_select_related = ["department", "period", "finalized_by"]
    actions = ["finalize", "resend"]
    inlines = [StatementLineInline]
    fieldsets = [
        (None, {"fields": ["department", "period", "status", "currency"]}),
        ("Figures", {"fields": ["gpu_hours", "total", "computed_at"]}),
        ("Finalized", {"fields": ["finalized_at", "finalized_by", "pricing_json"]}),
    ]
    readonly_fields = [
        "department",
        "period",
        "status",
        "currency",
        "gpu_hours",
        "total",
        "computed_at",
        "finalized_at",
        "finalized_by",
        "pricing_json",
    ]

    def has_add_permission(self, request) -> bool:
        return False  # the services make one per department and month

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_finalized:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_finalize_permission(self, request) -> bool:
        return request.user.has_perm("billing.finalize_statement")

    def has_resend_permission(self, request) -> bool:
        return request.user.has_perm("billing.add_statementsending")

    @admin.action(
        description="Send the selected finalized statements again", permissions=["resend"]
    )
    def resend(self, request, queryset):
        sent = 0
        for statement in queryset.select_related("department", "period"):
            if not statement.is_finalized:
                self.message_user(
                    request, f"{statement}: a draft is not sent; finalize it.", messages.ERROR
                )
                continue
            notifications.statement_resend(statement=statement, user=request.user)
            sent += 1
        if sent:
            self.message_user(request, f"{sent} statement(s) sent again.", messages.SUCCESS)

    def save_model(self, request, statement, form, change) -> None:
        """Nothing here is edited by hand: a draft is rewritten by every refresh."""

    def save_related(self, request, form, formsets, change) -> None:
        """The lines are the services' too."""

    @admin.display(description="finalized by")
    def finalized_by_or_portal(self, statement) -> str:
        if not statement.is_finalized:
            return "—"
        return str(statement.finalized_by) if statement.finalized_by else "the portal (automatic)"

    @admin.display(description="prices and policy it was finalized with")
    def pricing_json(self, statement) -> str:
        if not statement.pricing:
            return "—"
        return format_html(
            "<pre>{}</pre>", json.dumps(statement.pricing, indent=2, ensure_ascii=False)
        )

    @admin.action(description="Finalize the selected statements", permissions=["finalize"])
    def finalize(self, request, queryset):
        done = 0
        for statement in queryset.select_related("department", "period"):
            try:
                services.statement_finalize(statement=statement, user=request.user)
                done += 1
            except services.BillingError as exc:
                self.message_user(request, f"{statement}: {exc}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} statement(s) finalized.", messages.SUCCESS)


# --- Adjustments ----------------------------------------------------------------------------


class AdjustmentAddForm(forms.ModelForm):
    """A correction of a finalized statement; saved by
    :func:`billing.services.adjustment_create`, which places it on the next open
    statement."""

    gpu_hours = forms.DecimalField(
        label="GPU-hours",
        max_digits=18,
        decimal_places=6,
        required=False,
        initial=0,
        help_text="GPU-hours the correction stands for, if any.",
    )

    class Meta:
        model = Adjustment
        fields = ["original", "amount", "reason"]
        help_texts = {
            "original": "The finalized statement it corrects.",
            "amount": "Positive: charged; negative: credited. In whole minor units.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["original"].queryset = Statement.objects.filter(
            status=StatementStatus.FINALIZED
        ).select_related("department", "period")

    def clean(self):
        cleaned = super().clean()
        original, amount = cleaned.get("original"), cleaned.get("amount")
        if original is not None and amount is not None:
            rounded = pricing.round_money(amount, original.currency)
            if amount != rounded:
                self.add_error(
                    "amount",
                    f"Give the amount in whole {original.currency} minor units (e.g. {rounded}).",
                )
        return cleaned


@admin.register(Adjustment)
class AdjustmentAdmin(admin.ModelAdmin):
    list_display = [
        "original",
        "applied_to",
        "kind",
        "amount",
        "currency",
        "gpu_hours",
        "created_by_or_portal",
        "created_at",
    ]
    list_filter = [
        "kind",
        ("applied_to__period", admin.RelatedOnlyFieldListFilter),
        ("original__department", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["original__department__name", "original__department__slug", "reason"]
    list_select_related = [
        "original__department",
        "original__period",
        "applied_to__department",
        "applied_to__period",
        "created_by",
    ]
    add_fields = ["original", "amount", "gpu_hours", "reason"]
    fields = [
        "original",
        "applied_to",
        "kind",
        ("amount", "currency"),
        "gpu_hours",
        "reason",
        "created_by",
        "created_at",
    ]
    readonly_fields = ["created_at"]

    def get_fields(self, request, obj=None):
        return self.add_fields if obj is None else self.fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = AdjustmentAddForm
            kwargs["fields"] = self.add_fields
        return super().get_form(request, obj, change=change, **kwargs)

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # an adjustment is corrected by another adjustment

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, adjustment, form, change) -> None:
        created = services.adjustment_create(
            original=form.cleaned_data["original"],
            amount=form.cleaned_data["amount"],
            gpu_hours=form.cleaned_data["gpu_hours"] or Decimal(0),
            reason=form.cleaned_data["reason"],
            user=request.user,
        )
        # The admin goes on with the object it was given (its log entry, its message).
        for field in Adjustment._meta.concrete_fields:
            setattr(adjustment, field.attname, getattr(created, field.attname))
        adjustment._state.adding = False
        adjustment._state.db = created._state.db

    @admin.display(description="created by")
    def created_by_or_portal(self, adjustment) -> str:
        return str(adjustment.created_by) if adjustment.created_by else "the portal"


# --- Alert channels, deliveries, statement sendings -----------------------------------------


class AlertChannelForm(forms.ModelForm):
    class Meta:
        model = AlertChannel
        fields = [
            "department",
            "name",
            "kind",
            "emails",
            "url",
            "preset",
            "allow_private",
            "active",
        ]

    def clean(self):
        cleaned = super().clean()
        channel = AlertChannel(
            kind=cleaned.get("kind"),
            url=cleaned.get("url") or "",
            allow_private=bool(cleaned.get("allow_private")),
        )
        try:
            notifications.channel_check(channel)
        except UrlRefused as exc:
            self.add_error("url", str(exc))
        return cleaned


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    """IT's view of every department's channels; the secret is shown once, when made."""

    form = AlertChannelForm
    list_display = ["department", "name", "kind", "preset", "url", "active", "created_at"]
    list_filter = ["kind", "preset", "active", ("department", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "department__name", "url"]
    list_select_related = ["department"]

    def save_model(self, request, channel, form, change) -> None:
        if not change:
            channel.created_by = request.user
        super().save_model(request, channel, form, change)
        if not change and channel.kind == "webhook":
            self.message_user(
                request,
                f"The signing secret of {channel}, shown this once: {channel.secret}",
                messages.WARNING,
            )


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "channel",
        "event_key",
        "status",
        "attempts",
        "last_status_code",
        "last_answer",
        "next_attempt_at",
        "sent_at",
    ]
    list_filter = [
        "status",
        "event_type",
        ("channel__department", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["event_key", "subject", "channel__name", "channel__department__name"]
    list_select_related = ["channel__department"]
    readonly_fields = [f.name for f in Delivery._meta.fields]
    actions = ["retry_now"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Retry the selected deliveries now", permissions=["change"])
    def retry_now(self, request, queryset):
        for delivery in queryset:
            notifications.delivery_retry_now(delivery=delivery)
        self.message_user(
            request, f"{queryset.count()} delivery(ies) sent again.", messages.SUCCESS
        )


@admin.register(StatementSending)
class StatementSendingAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "kind",
        "statement",
        "period",
        "status",
        "attempt",
        "recipient_list",
        "sent_at",
        "next_attempt_at",
    ]
    list_filter = ["kind", "status", "period"]
    search_fields = ["statement__department__name", "recipients"]
    list_select_related = ["statement__department", "statement__period", "period"]
    readonly_fields = [f.name for f in StatementSending._meta.fields]
    actions = ["retry_now"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="recipients")
    def recipient_list(self, sending) -> str:
        return ", ".join(sending.recipients)

    @admin.action(description="Retry the selected sendings now", permissions=["change"])
    def retry_now(self, request, queryset):
        for sending in queryset:
            notifications.sending_retry_now(sending=sending)
        self.message_user(request, f"{queryset.count()} sending(s) sent again.", messages.SUCCESS)
