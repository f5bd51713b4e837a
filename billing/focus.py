"""The month's charges in the FinOps Foundation's FOCUS format, version 1.2 (docs/focus.md):
one row per charge of every statement of the month, so that a FinOps tool reads the
portal's chargeback as it reads a cloud provider's bill.

Rows come from the statements' own lines (drafts as last refreshed, finalized ones as
frozen): a line of portal jobs becomes one row per job (its amount split to the cent by
largest remainder), every other line one row. BilledCost is the line's rounded amount, so
the BilledCost of a department's rows adds up to its statement's total to the cent. Lines
no department pays (*Unallocated*, idle absorbed by IT) are in no statement and not here.
"""

import datetime as dt
import decimal
import json
from decimal import Decimal

from django.conf import settings
from django.db.models import Prefetch

from billing.models import (
    BillingPeriod,
    LineKind,
    Statement,
    StatementLine,
    StatementLineJob,
    minor_unit,
)
from billing.pricing import allocate
from core.api import NamedCSVRenderer, error_as_json
from core.calendar import month_bounds
from departments.models import namespace_label

FOCUS_VERSION = "1.2"
# What the portal supports among FOCUS 1.2's applicability criteria: the conditional rules
# these enable apply to the export (the validator is run with them, docs/focus.md). Not
# claimed: regions and zones, commitment discounts, capacity reservations, a public price
# list with SKUs, several currencies or account types.
APPLICABILITY_CRITERIA = (
    "ACCOUNT_NAMING_SUPPORTED",
    "SUB_ACCOUNT_SUPPORTED",
    "USAGE_MEASUREMENT_SUPPORTED",
    "NEGOTIATED_PRICING_SUPPORTED",
    "BILLING_BASED_ON_PROVISIONED_RESOURCES_SUPPORTED",
    "RESOURCE_TYPE_ASSIGNMENT_SUPPORTED",
    "TAGGING_SUPPORTED",
)

# Every column FOCUS 1.2 makes mandatory, those its conditions make mandatory for what the
# portal supports (sub accounts, usage measurement, negotiated prices, resources and their
# types, tags), the recommended ones it can fill, the commitment discount's id and status
# (always null: 1.2's rules for ConsumedQuantity read the status), and two columns of its
# own (x_ prefixed): the statement a row is on and whether it is finalized. The invoice is
# the statement (named as its PDF is); a draft is a provisional invoice.
COLUMNS = (
    "BillingAccountId",
    "BillingAccountName",
    "SubAccountId",
    "SubAccountName",
    "InvoiceIssuerName",
    "ProviderName",
    "PublisherName",
    "InvoiceId",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeClass",
    "ChargeFrequency",
    "ChargeDescription",
    "ServiceName",
    "ServiceCategory",
    "ServiceSubcategory",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "RegionId",
    "RegionName",
    "AvailabilityZone",
    "ConsumedQuantity",
    "ConsumedUnit",
    "PricingQuantity",
    "PricingUnit",
    "ListUnitPrice",
    "ContractedUnitPrice",
    "ListCost",
    "ContractedCost",
    "BilledCost",
    "EffectiveCost",
    "BillingCurrency",
    "CommitmentDiscountId",
    "CommitmentDiscountStatus",
    "Tags",
    "x_StatementId",
    "x_StatementStatus",
)

SERVICE_NAME = "GPU compute"
SERVICE_CATEGORY = "Compute"  # one of FOCUS 1.2's allowed values
SERVICE_SUBCATEGORY = "Containers"  # Kubernetes workloads; a child of Compute in 1.2
GPU_HOURS_UNIT = "GPU-Hours"
# Idle rows are an allocation of the idle capacity's value, priced as one whole: no unit
# price times GPU-hours gives them (their hours had different off-peak multipliers).
ALLOCATION_UNIT = "Allocation"
TAG_PREFIX = "portal/"  # the provider-defined tags' prefix (FOCUS Tags-C-012)
IDLE_KINDS = (LineKind.POOL_IDLE, LineKind.IDLE)
SECONDS_PER_HOUR = Decimal(3600)
QUANTITY_PLACES = Decimal("1e-12")  # GPU-hours to 1e-12: finer than the ledger's µs


def focus_time(moment: dt.datetime) -> str:
    """A moment as FOCUS writes it: UTC, ``2026-03-01T00:00:00Z``."""
    return f"{moment.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}"


# The validator holds FOCUS strings to ASCII (the specification asks for Unicode): the
# portal's own typography is written in ASCII; other characters (a name with an accent)
# are kept as they are.
ASCII_TYPOGRAPHY = str.maketrans(
    {
        "×": "x",
        "\u201c": '"',
        "\u201d": '"',
        "\u2018": "'",
        "\u2019": "'",
        "\u2013": "-",
        "\u2014": "-",
        "…": "...",
        "·": "-",
        "\u00a0": " ",
        "\u202f": " ",
    }
)


def focus_text(text: str) -> str:
    """``text`` with the portal's typography (×, curly quotes, dashes) in ASCII."""
    return text.translate(ASCII_TYPOGRAPHY)


def focus_number(value: Decimal | None) -> str | None:
    """A decimal as FOCUS writes it: plain digits, a point, a minus sign when negative; no
    exponent, no thousands separator, no trailing zeros; None stays null."""
    if value is None:
        return None
    if not value:
        return "0"
    return f"{value.normalize():f}"


def focus_rows(*, period: BillingPeriod) -> list[dict[str, str | None]]:
    """Every charge on the month's statements as FOCUS rows (:data:`COLUMNS` as keys, values
    as the CSV writes them), by department, then as the statement lists its lines."""
    if period.pk is None:  # a month nothing opened (services.period_for_reading)
        return []
    start, end = month_bounds(period.month)
    lines = (
        StatementLine.objects.filter(statement__period=period)
        .select_related(
            "statement__department",
            "gpu_class",
            "cluster",
            "job_kind",
            "adjustment__original__period",
        )
        .prefetch_related(
            Prefetch(
                "jobs",
                queryset=StatementLineJob.objects.select_related("job").order_by(
                    "job__submitted_at", "job_id"
                ),
            )
        )
        .order_by("statement__department__name", "statement_id", "position", "pk")
    )
    rows = []
    with decimal.localcontext() as context:
        context.prec = 60  # price × quantity exactly, whatever the digits
        for line in lines:
            rows.extend(_line_rows(line, billing_period=(start, end)))
    return rows


def _line_rows(line: StatementLine, *, billing_period) -> list[dict]:
    statement: Statement = line.statement
    department = statement.department
    start, end = billing_period
    base = {
        "BillingAccountId": settings.FOCUS_BILLING_ACCOUNT_ID,
        "BillingAccountName": settings.FOCUS_BILLING_ACCOUNT_NAME,
        "SubAccountId": department.slug,
        "SubAccountName": focus_text(department.name),
        "InvoiceIssuerName": settings.FOCUS_PROVIDER_NAME,
        "ProviderName": settings.FOCUS_PROVIDER_NAME,
        "PublisherName": settings.FOCUS_PROVIDER_NAME,
        "InvoiceId": f"statement-{department.slug}-{statement.period.label}",
        "BillingPeriodStart": focus_time(start),
        "BillingPeriodEnd": focus_time(end),
        "ChargePeriodStart": focus_time(start),
        "ChargePeriodEnd": focus_time(end),
        "ChargeClass": None,
        "ChargeDescription": focus_text(line.description),
        "ServiceName": SERVICE_NAME,
        "ServiceCategory": SERVICE_CATEGORY,
        "ServiceSubcategory": SERVICE_SUBCATEGORY,
        "RegionId": None,
        "RegionName": None,
        "AvailabilityZone": None,
        "BillingCurrency": statement.currency,
        "CommitmentDiscountId": None,
        "CommitmentDiscountStatus": None,
        "x_StatementId": str(statement.pk),
        "x_StatementStatus": statement.status,
    }
    tags = {
        "cost-centre": department.cost_centre,
        "charge": line.kind,
        "tier": line.tier,
        "gpu-class": line.gpu_class.name if line.gpu_class_id else "",
        "cluster": line.cluster.slug if line.cluster_id else "",
        "job-kind": line.job_kind.name if line.job_kind_id else "",
    }
    if line.kind == LineKind.ADJUSTMENT:
        return [{**base, **_adjustment(line), "Tags": _tags(tags)}]
    if line.kind in IDLE_KINDS:
        if line.share is not None:
            tags["idle-share"] = line.share
        return [{**base, **_idle(line), "Tags": _tags(tags)}]
    jobs = list(line.jobs.all()) if line.kind == LineKind.JOBS else []
    if not jobs or not sum((job.gpu_seconds for job in jobs), Decimal(0)):
        return [{**base, **_usage(line, line.gpu_seconds, line.amount), "Tags": _tags(tags)}]
    parts = allocate(line.amount, [job.gpu_seconds for job in jobs], minor_unit(statement.currency))
    return [
        {
            **base,
            **_usage(line, job.gpu_seconds, part),
            "ResourceId": f"job/{job.job_id}",
            "ResourceName": None,  # a job has no display name
            "ResourceType": "Portal job",
            "Tags": _tags(tags),
        }
        for job, part in zip(jobs, parts, strict=True)
    ]


def _namespace(line: StatementLine) -> str:
    return namespace_label(line.namespace, line.cluster.slug if line.cluster_id else None)


def _resource(line: StatementLine) -> dict:
    """The namespace of a line that keeps one (a worker pool's idle); else the GPU class
    its GPU time was used on (namespace workloads, fleet idle); none for an unknown GPU
    model or a share of the whole fleet's idle capacity."""
    if line.namespace:
        label = _namespace(line)
        return {
            "ResourceId": f"namespace/{label}",
            "ResourceName": focus_text(label),
            "ResourceType": "Kubernetes namespace",
        }
    if line.gpu_class_id:
        # A usage line keeps no namespace (its namespaces are named in its description).
        slug = line.gpu_class.slug
        return {
            "ResourceId": f"gpu-class/{line.cluster.slug}/{slug}"
            if line.cluster_id
            else f"gpu-class/{slug}",
            "ResourceName": focus_text(line.gpu_class.name),
            "ResourceType": "GPU class",
        }
    return {"ResourceId": None, "ResourceName": None, "ResourceType": None}


def _hours(gpu_seconds: Decimal) -> Decimal:
    return (gpu_seconds / SECONDS_PER_HOUR).quantize(QUANTITY_PLACES)


def _usage(line: StatementLine, gpu_seconds: Decimal, amount: Decimal) -> dict:
    """GPU time priced per GPU-hour: the list price is the rate card's times the off-peak
    multiplier (published to everyone), the contracted price also times the department's
    multiplier. A line no card priced is charged nothing: its prices are 0."""
    hours = _hours(gpu_seconds)
    list_price = (line.unit_price or Decimal(0)) * line.off_peak_multiplier
    contracted_price = list_price * line.department_multiplier
    return {
        **_resource(line),
        "ChargeCategory": "Usage",
        "ChargeFrequency": "Usage-Based",
        "ConsumedQuantity": focus_number(hours),
        "ConsumedUnit": GPU_HOURS_UNIT,
        "PricingQuantity": focus_number(hours),
        "PricingUnit": GPU_HOURS_UNIT,
        "ListUnitPrice": focus_number(list_price),
        "ContractedUnitPrice": focus_number(contracted_price),
        "ListCost": focus_number(list_price * hours),
        "ContractedCost": focus_number(contracted_price * hours),
        "BilledCost": focus_number(amount),
        "EffectiveCost": focus_number(amount),
    }


def _idle(line: StatementLine) -> dict:
    """A department's part of idle capacity (a worker pool's, or the fleet's): usage of
    the idle GPU-hours, priced as one allocation worth the line's amount."""
    amount = focus_number(line.amount)
    return {
        **_resource(line),
        "ChargeCategory": "Usage",
        "ChargeFrequency": "Usage-Based",
        "ConsumedQuantity": focus_number(_hours(line.gpu_seconds)),
        "ConsumedUnit": GPU_HOURS_UNIT,
        "PricingQuantity": "1",
        "PricingUnit": ALLOCATION_UNIT,
        "ListUnitPrice": amount,
        "ContractedUnitPrice": amount,
        "ListCost": amount,
        "ContractedCost": amount,
        "BilledCost": amount,
        "EffectiveCost": amount,
    }


def _adjustment(line: StatementLine) -> dict:
    """An adjustment corrects a finalized (invoiced) month: ChargeClass "Correction", its
    charge period that month, no quantity or unit price."""
    amount = focus_number(line.amount)
    row = {
        "ResourceId": None,
        "ResourceName": None,
        "ResourceType": None,
        "ChargeCategory": "Adjustment",
        "ChargeClass": "Correction",
        "ChargeFrequency": "One-Time",
        "ConsumedQuantity": None,
        "ConsumedUnit": None,
        "PricingQuantity": None,
        "PricingUnit": None,
        "ListUnitPrice": None,
        "ContractedUnitPrice": None,
        "ListCost": amount,
        "ContractedCost": amount,
        "BilledCost": amount,
        "EffectiveCost": amount,
    }
    if line.adjustment_id:
        original_start, original_end = month_bounds(line.adjustment.original.period.month)
        row["ChargePeriodStart"] = focus_time(original_start)
        row["ChargePeriodEnd"] = focus_time(original_end)
    return row


def _tags(tags: dict) -> str:
    """The provider-defined tags as one JSON object, each key prefixed, empty ones left
    out."""
    return json.dumps(
        {
            f"{TAG_PREFIX}{key}": float(value) if isinstance(value, Decimal) else value
            for key, value in tags.items()
            if value not in ("", None)
        },
        sort_keys=True,
    )


class FocusCSVRenderer(NamedCSVRenderer):
    """The FOCUS columns in their order, nulls as empty cells; cells a spreadsheet would
    run as a formula made inert as in every export; an error answer is JSON."""

    def render(self, data, media_type=None, renderer_context=None):
        error = error_as_json(data, renderer_context)
        if error is not None:
            return error
        renderer_context = {**(renderer_context or {}), "header": list(COLUMNS)}
        return super().render(data, media_type, renderer_context)

    def tablize(self, data, header=None, labels=None):
        header = header or list(COLUMNS)
        yield header
        for row in data:
            yield [self._inert(row.get(column)) for column in header]
