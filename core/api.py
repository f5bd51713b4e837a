"""REST API plumbing shared by every app: permissions, pagination, CSV, validation."""

import copy
import io
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import get_currency_precision
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from openpyxl import Workbook
from openpyxl.utils import get_column_letter
from rest_framework import permissions, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import BaseRenderer
from rest_framework.settings import api_settings
from rest_framework_csv.renderers import CSVRenderer as _LibraryCSVRenderer

from core import calendar


class ModelPermissions(permissions.DjangoModelPermissions):
    """Writes need the model's add/change/delete permission, the rule the admin applies
    (granted to groups in data migrations, see :mod:`core.roles`). Reads are open to any
    authenticated user because every view's queryset is already limited to what the user
    may see. A view without a queryset is read-only unless it declares its own permissions.
    """

    def has_permission(self, request, view) -> bool:
        if getattr(view, "queryset", None) is None and not hasattr(view, "get_queryset"):
            return bool(request.user and request.user.is_authenticated) and (
                request.method in permissions.SAFE_METHODS
            )
        return super().has_permission(request, view)


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 1000

    def paginate_queryset(self, queryset, request, view=None):
        # A CSV export is a whole table, not one page of it.
        renderer = getattr(request, "accepted_renderer", None)
        if renderer is not None and renderer.format == "csv":
            return None
        return super().paginate_queryset(queryset, request, view)


class CSVRenderer(_LibraryCSVRenderer):
    """CSV with the serializer's column order, lists of plain values joined in one cell,
    a download file name, and cells a spreadsheet would run as a formula made inert."""

    list_separator = "; "
    formula_prefixes = ("=", "+", "-", "@", "\t", "\r")

    def render(self, data, media_type=None, renderer_context=None):
        renderer_context = renderer_context or {}
        view = renderer_context.get("view")
        response = renderer_context.get("response")
        if view is not None and response is not None and response.status_code < 400:
            name = getattr(view, "basename", None) or "export"
            response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        if not data and view is not None and hasattr(view, "get_serializer"):
            renderer_context = {**renderer_context, "header": list(view.get_serializer().fields)}
        return super().render(data, media_type, renderer_context)

    def tablize(self, data, header=None, labels=None):
        if header or not data:
            yield from super().tablize(data, header=header, labels=labels)
            return
        rows = [self.flatten_item(item) for item in data]
        header = list(dict.fromkeys(key for row in rows for key in row))
        yield header
        for row in rows:
            yield [self._inert(row.get(key)) for key in header]

    def flatten_item(self, item):
        if isinstance(item, list) and all(not isinstance(v, dict | list) for v in item):
            return {"": self.list_separator.join("" if v is None else str(v) for v in item)}
        return super().flatten_item(item)

    def _inert(self, value):
        if isinstance(value, str) and value.startswith(self.formula_prefixes):
            try:
                Decimal(value)  # a negative amount is a number, not a formula
            except InvalidOperation:
                return "'" + value
        return value


class ModelValidationMixin:
    """Runs the model's own validation (field validators, ``clean()``, constraints) on the
    incoming data, so the API refuses exactly what the admin refuses, with the same words.
    """

    def validate(self, attrs):
        attrs = super().validate(attrs)
        model = self.Meta.model
        many_to_many = {field.name for field in model._meta.many_to_many}
        instance = copy.copy(self.instance) if self.instance is not None else model()
        for name, value in attrs.items():
            if name not in many_to_many:
                setattr(instance, name, value)
        try:
            instance.full_clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(error_detail(exc)) from exc
        return attrs


def error_detail(exc: DjangoValidationError):
    if not hasattr(exc, "error_dict"):
        return {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}
    return {
        (api_settings.NON_FIELD_ERRORS_KEY if field == NON_FIELD_ERRORS else field): messages
        for field, messages in exc.message_dict.items()
    }


# --- Exports: CSV under the view's name, XLSX with the CSV's columns ---------------------------

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TABLE_FORMATS = ("csv", "xlsx")
# A cell written as a number in the spreadsheet: a plain decimal, no leading zero (so a
# code such as "0042" stays text).
_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?$")
# How the exports' columns read in a spreadsheet, by column name: amounts of money in the
# row's currency (its ``currency`` column) to its minor unit, prices to four decimals at
# most, GPU-hours to 0.01. Other numbers keep the spreadsheet's general format.
MONEY_COLUMNS = frozenset({"amount", "list_amount", "spend", "total"})
MONEY_PREFIXES = ("spend ", "usage in ")  # the chargeback's spend per GPU class, per cluster
PRICE_COLUMNS = frozenset({"unit_price"})
GPU_HOURS_COLUMNS = frozenset({"gpu_hours", "budget_gpu_hours"})
GPU_HOURS_UNIT = "GPU-hours"  # a usage row's ``quantity`` is GPU-hours when its unit says so
GPU_HOURS_FORMAT = "0.00"
SHEET_TITLE_MAX = 31  # Excel's limit
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_MONTH = re.compile(r"\d{4}-\d{2}")
COLUMN_WIDTH_MAX = 60


def export_name(view, default: str = "export") -> str:
    """The download's file name without extension: the view's ``export_name()`` when it
    has one, else its basename."""
    named = getattr(view, "export_name", None)
    if callable(named):
        return named()
    return getattr(view, "basename", None) or default


def error_as_json(data, renderer_context) -> bytes | None:
    """An error answer to a binary format is sent as JSON, so the client can read it."""
    response = (renderer_context or {}).get("response")
    if response is None or response.status_code < 400:
        return None
    response["Content-Type"] = "application/json"
    response.headers.pop("Content-Disposition", None)
    return json.dumps(data, default=str).encode()


class ExportPagination(Pagination):
    """Pages for JSON; a CSV or XLSX export is the whole table."""

    def paginate_queryset(self, queryset, request, view=None):
        renderer = getattr(request, "accepted_renderer", None)
        if renderer is not None and renderer.format in TABLE_FORMATS:
            return None
        return super().paginate_queryset(queryset, request, view)


class NamedCSVRenderer(CSVRenderer):
    """The project's CSV, downloaded under the view's :func:`export_name`."""

    def render(self, data, media_type=None, renderer_context=None):
        body = super().render(data, media_type, renderer_context)
        response = (renderer_context or {}).get("response")
        view = (renderer_context or {}).get("view")
        if response is not None and response.status_code < 400:
            response["Content-Disposition"] = f'attachment; filename="{export_name(view)}.csv"'
        return body


class XLSXRenderer(BaseRenderer):
    """One worksheet with the columns and rows the CSV export has (nested values flattened
    the same way, cells a spreadsheet would run as formulas made inert); plain decimal
    strings become numbers so the sheet can sum them."""

    media_type = XLSX_MEDIA_TYPE
    format = "xlsx"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        error = error_as_json(data, renderer_context)
        if error is not None:
            return error
        renderer_context = renderer_context or {}
        view = renderer_context.get("view")
        rows = data.get("results", data) if isinstance(data, dict) else data
        if isinstance(rows, dict):
            rows = [rows]
        header = renderer_context.get("header")
        if not rows and header is None and view is not None and hasattr(view, "get_serializer"):
            header = list(view.get_serializer().fields)
        workbook = Workbook()
        sheet = workbook.active
        name = export_name(view)
        sheet.title = sheet_title(name)
        table = CSVRenderer().tablize(rows or [], header=header)
        columns = [str(column) for column in next(table, [])]
        widths = [len(column) for column in columns]
        if columns:
            sheet.append(columns)
            sheet.freeze_panes = "A2"  # the header stays in view
        for row in table:
            cells = [_cell(value) for value in row]
            sheet.append(cells)
            record = dict(zip(columns, row, strict=False))
            for index, (column, value) in enumerate(zip(columns, cells, strict=False)):
                number_format = _number_format(column, record)
                if number_format and isinstance(value, Decimal):
                    sheet.cell(row=sheet.max_row, column=index + 1).number_format = number_format
                widths[index] = max(widths[index], _shown_width(value, record, number_format))
        for index, width in enumerate(widths, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = min(
                width + 2, COLUMN_WIDTH_MAX
            )
        out = io.BytesIO()
        workbook.save(out)
        response = renderer_context.get("response")
        if response is not None:
            response["Content-Disposition"] = f'attachment; filename="{name}.xlsx"'
        return out.getvalue()


def sheet_title(name: str) -> str:
    """An export's name as a worksheet title Excel accepts (31 characters at most, none of
    ``[]:*?/\\``) that keeps the month: ``chargeback-2026-03`` is *Chargeback 2026-03*; a
    long name loses words, never its month."""
    month = _MONTH.search(name)
    words = _MONTH.sub(" ", name) if month else name
    words = " ".join(_SHEET_FORBIDDEN.sub(" ", words).replace("-", " ").split())
    words = words[:1].upper() + words[1:]
    if month is None:
        return words[:SHEET_TITLE_MAX].rstrip() or "Export"
    words = words[: SHEET_TITLE_MAX - len(month[0]) - 1].rstrip()
    return f"{words} {month[0]}" if words else month[0]


def _currency_format(currency: str, *, price: bool = False) -> str:
    """``#,##0.00 "EUR"``: the currency's minor unit (``#,##0 "JPY"``); a price may show
    up to four decimals (``#,##0.00## "EUR"``)."""
    digits = get_currency_precision(currency)
    decimals = "0" * digits + ("#" * (4 - digits) if price else "")
    return f'#,##0{"." + decimals if decimals else ""} "{currency}"'


def _number_format(column: str, record: dict) -> str | None:
    """The number format of ``column`` in a row ``record`` (see :data:`MONEY_COLUMNS`)."""
    currency = record.get("currency") or settings.BILLING_CURRENCY
    if column in MONEY_COLUMNS or column.startswith(MONEY_PREFIXES):
        return _currency_format(currency)
    if column in PRICE_COLUMNS:
        return _currency_format(currency, price=True)
    if column in GPU_HOURS_COLUMNS or (
        column == "quantity" and record.get("unit") == GPU_HOURS_UNIT
    ):
        return GPU_HOURS_FORMAT
    return None


def _shown_width(value: Any, record: dict, number_format: str | None) -> int:
    """About how many characters ``value`` takes in its cell, formatted."""
    if value is None:
        return 0
    if isinstance(value, Decimal) and number_format:
        if number_format == GPU_HOURS_FORMAT:
            return len(f"{value:,.2f}")
        currency = record.get("currency") or settings.BILLING_CURRENCY
        digits = max(get_currency_precision(currency), -value.as_tuple().exponent)
        return len(f"{value:,.{digits}f} {currency}")
    return max(len(line) for line in str(value).splitlines() or [""])


def _cell(value: Any):
    if isinstance(value, str) and _NUMBER.match(value):
        return Decimal(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


# A period of months as the reports read and write it (:func:`core.calendar.period_parse`).
PERIOD_SCHEMA = {
    "type": "string",
    "pattern": calendar.PERIOD_PATTERN,
    "example": "2026-Q3",
    "maxLength": 16,
}


@extend_schema_field(PERIOD_SCHEMA)
class PeriodField(serializers.CharField):
    """A period of months: ``YYYY-MM``, ``YYYY-Qn``, ``YYYY-YTD`` or ``YYYY-MM..YYYY-MM``,
    read as a :class:`core.calendar.Period` that has begun, shown as its label. A refusal
    says what is wrong and names the accepted forms."""

    def to_internal_value(self, data) -> calendar.Period:
        try:
            return calendar.period_parse(str(data))
        except ValueError as exc:
            raise serializers.ValidationError(str(exc), code="invalid") from exc

    def to_representation(self, value) -> str:
        return value.label if isinstance(value, calendar.Period) else str(value)
