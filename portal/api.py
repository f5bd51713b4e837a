"""REST API plumbing shared by every app: permissions, pagination, CSV, validation."""

import copy
import io
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from openpyxl import Workbook
from rest_framework import permissions, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import BaseRenderer
from rest_framework.settings import api_settings
from rest_framework_csv.renderers import CSVRenderer as _LibraryCSVRenderer


class ModelPermissions(permissions.DjangoModelPermissions):
    """Writes need the model's add/change/delete permission, the rule the admin applies
    (granted to groups in data migrations, see :mod:`portal.roles`). Reads are open to any
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
        sheet.title = name[:31]
        for row in CSVRenderer().tablize(rows or [], header=header):
            sheet.append([_cell(value) for value in row])
        out = io.BytesIO()
        workbook.save(out)
        response = renderer_context.get("response")
        if response is not None:
            response["Content-Disposition"] = f'attachment; filename="{name}.xlsx"'
        return out.getvalue()


def _cell(value: Any):
    if isinstance(value, str) and _NUMBER.match(value):
        return Decimal(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value
