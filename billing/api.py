"""REST endpoints of billing: rate cards, statements (JSON, CSV, XLSX, PDF), finalizing,
adjustments and the monthly chargeback report.

Who sees what is decided by :func:`billing.selectors.statements_for_user` (finance and IT
every department, a manager the departments they manage, a member none); who may write by
model permissions held by the finance group (``billing/migrations/0002_roles.py``).
Statements are never written through the API: a method an endpoint does not offer
answers 405 to anyone signed in, and only finalizing changes a statement.
"""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import MethodNotAllowed, NotFound
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import exports, focus, foresight, selectors, services
from billing.filters import AdjustmentFilter, RateCardFilter, StatementFilter
from billing.models import Adjustment, FrozenError, RateCard, Statement, StatementLine
from billing.serializers import (
    FORECAST_HEADER,
    MONTH_SCHEMA,
    AdjustmentCreateSerializer,
    AdjustmentSerializer,
    ChargebackQuerySerializer,
    ChargebackReportQuerySerializer,
    ChargebackReportSerializer,
    ChargebackRowSerializer,
    ForecastQuerySerializer,
    ForecastRowSerializer,
    LineJobSerializer,
    PoolHourSerializer,
    PoolQuerySerializer,
    RateCardSerializer,
    StatementDetailSerializer,
    StatementLineRowSerializer,
    StatementSerializer,
)
from core import calendar, roles
from core.api import (
    TABLE_FORMATS,
    XLSX_MEDIA_TYPE,
    ExportPagination,
    ModelPermissions,
    NamedCSVRenderer,
    XLSXRenderer,
)

TABLE_RENDERERS = [
    JSONRenderer,
    BrowsableAPIRenderer,
    NamedCSVRenderer,
    XLSXRenderer,
]
WRITE_VERBS = ["get", "post", "patch", "delete", "head", "options"]
MONTH_CHANGED_ON_READ = (
    "Reading a month's statements first brings its drafts up to date with the ledger and "
    "the prices (a no-op when nothing changed)."
)


def month_parameter(description: str) -> OpenApiParameter:
    """The ``period`` query parameter of a list whose filter reads it (``YYYY-MM``, as
    :class:`billing.serializers.MonthField` documents it for the reports)."""
    return OpenApiParameter("period", MONTH_SCHEMA, description=description)


class OfferedMethodsOnly(ModelPermissions):
    """:class:`core.api.ModelPermissions`, except that a method the endpoint does not
    offer answers 405 to anyone signed in rather than 403: nobody, finance included, may
    change or delete a statement or an adjustment."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        offered = getattr(view, "action", "") is not None  # a viewset maps offered methods
        if request.method not in permissions.SAFE_METHODS and not offered:
            raise MethodNotAllowed(request.method)
        return super().has_permission(request, view)


class CanFinalizeStatements(permissions.BasePermission):
    """Holds ``billing.finalize_statement`` (the finance group)."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.has_perm("billing.finalize_statement"))


def _refresh(months) -> None:
    """Bring the drafts of ``months`` up to date, oldest first (late usage of an earlier,
    finalized month lands on a later one). Months that have not begun, and months nothing
    opened (:func:`billing.services.month_opened`), are left alone."""
    current = calendar.month_of(timezone.now())
    for month in sorted(set(months)):
        if month <= current and services.month_opened(month):
            services.period_refresh(month=month)


class RateCardViewSet(viewsets.ModelViewSet):
    """Prices per GPU-hour. Every signed-in user reads them: rates are organisation-wide,
    the same for every department, and statements show them. Finance writes them; a new
    card may not overlap one of the same GPU class and tier, and must be in the billing
    currency (400 with the model's words). A card that priced a statement cannot be
    deleted (409): end it with `valid_to` and start a new one."""

    serializer_class = RateCardSerializer
    filterset_class = RateCardFilter
    ordering_fields = ["valid_from", "price_per_gpu_hour", "gpu_class__name", "tier"]
    http_method_names = WRITE_VERBS
    queryset = RateCard.objects.select_related("gpu_class")


class StatementViewSet(viewsets.ReadOnlyModelViewSet):
    """Monthly statements, one per department and month. Finance and it-admin read every
    statement, a manager those of the departments they manage, a member none (their own
    jobs are theirs to see, not the department's money).

    `?format=csv` or `?format=xlsx` gives the list as one table (statements as rows) and a
    statement as its lines; `?format=pdf` or `pdf/` gives a statement as the PDF finance
    sends. Statements are never changed here: only `finalize/` freezes a draft."""

    filterset_class = StatementFilter
    ordering_fields = ["period__month", "department__name", "total", "status"]
    permission_classes = [OfferedMethodsOnly]
    pagination_class = ExportPagination
    renderer_classes = TABLE_RENDERERS
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return selectors.statements_for_user(user=self.request.user)

    def get_renderers(self):
        renderers = super().get_renderers()
        if getattr(self, "action", None) == "retrieve":
            renderers.append(exports.PDFRenderer())
        return renderers

    def _table_format(self) -> bool:
        renderer = getattr(self.request, "accepted_renderer", None)
        return renderer is not None and renderer.format in TABLE_FORMATS

    def get_serializer_class(self):
        if self.action == "list":
            return StatementSerializer
        if self.action == "retrieve" and self._table_format():
            return StatementLineRowSerializer
        return StatementDetailSerializer

    def export_name(self) -> str:
        statement = getattr(self, "_statement", None)
        if statement is None:
            return "statements"
        name = f"statement-{statement.department.slug}-{statement.period.label}"
        line = getattr(self, "_line_pk", None)
        return f"{name}-line-{line}-jobs" if line else name

    def get_object(self) -> Statement:
        """The statement, if the user may read it, with its month refreshed first; 404
        otherwise (whether or not it exists)."""
        pk = self.kwargs["pk"]
        month = self.get_queryset().filter(pk=pk).values_list("period__month", flat=True).first()
        if month is None:
            raise NotFound(f"No statement {pk} among those you can read.")
        _refresh([month])
        self._statement = selectors.statement_with_lines(user=self.request.user, pk=pk)
        self.check_object_permissions(self.request, self._statement)
        return self._statement

    @extend_schema(
        description=MONTH_CHANGED_ON_READ,
        parameters=[month_parameter("The month, YYYY-MM.")],
    )
    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        if page is not None:
            months = {statement.period.month for statement in page}
        else:
            months = set(queryset.order_by().values_list("period__month", flat=True).distinct())
        period = request.query_params.get("period")
        if period:
            months.add(calendar.month_parse(period))  # valid: the filter accepted it
        _refresh(months)
        return super().list(request, *args, **kwargs)

    @extend_schema(
        description=MONTH_CHANGED_ON_READ,
        responses={
            (200, "application/json"): StatementDetailSerializer,
            (200, "text/csv"): OpenApiTypes.STR,
            (200, XLSX_MEDIA_TYPE): OpenApiTypes.BINARY,
            (200, "application/pdf"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="No such statement among those you can read."),
        },
    )
    def retrieve(self, request, *args, **kwargs):
        statement = self.get_object()
        if request.accepted_renderer.format == "pdf":
            return self._pdf_response(statement)
        if self._table_format():
            rows = self.get_serializer(
                statement.lines.all(),
                many=True,
                context={**self.get_serializer_context(), "statement": statement},
            )
            return Response(rows.data)
        return Response(self.get_serializer(statement).data)

    @extend_schema(
        description="The statement as a PDF: department, cost centre, month, status (a DRAFT "
        "watermark on drafts), each line with its derivation, the total. " + MONTH_CHANGED_ON_READ,
        responses={
            (200, "application/pdf"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="No such statement among those you can read."),
        },
    )
    @action(detail=True, methods=["get"], renderer_classes=[exports.PDFRenderer])
    def pdf(self, request, pk=None, format=None):  # the router passes format
        return self._pdf_response(self.get_object())

    @extend_schema(
        description="The portal jobs behind a line of portal jobs (its `jobs_url`), with "
        "each job's GPU time on that line, as the line stands. `?format=csv` or "
        "`?format=xlsx` as a table.",
        responses={
            200: LineJobSerializer(many=True),
            404: OpenApiResponse(description="No such line among the statements you can read."),
        },
    )
    @action(
        detail=True,
        methods=["get"],
        url_path=r"lines/(?P<line_pk>\d+)/jobs",
        serializer_class=LineJobSerializer,
        filter_backends=[],  # the statements' filters and ordering do not apply to its jobs
    )
    def line_jobs(self, request, pk=None, line_pk=None, format=None):  # the router passes format
        # The line as it stands (not refreshed first: a refresh of a draft writes its
        # lines anew, and the line the caller was shown would be gone).
        try:
            jobs = selectors.line_jobs(user=request.user, statement_pk=pk, line_pk=line_pk)
        except StatementLine.DoesNotExist as exc:
            raise NotFound(f"No line {line_pk} of statement {pk}.") from exc
        self._statement = self.get_queryset().get(pk=pk)
        self._line_pk = line_pk
        page = self.paginate_queryset(jobs)
        if page is not None:
            return self.get_paginated_response(LineJobSerializer(page, many=True).data)
        return Response(LineJobSerializer(jobs, many=True).data)

    def _pdf_response(self, statement: Statement) -> Response:
        return Response(
            exports.statement_pdf(statement),
            headers={"Content-Disposition": f'inline; filename="{self.export_name()}.pdf"'},
        )

    @extend_schema(
        request=None,
        responses={
            200: StatementDetailSerializer,
            403: OpenApiResponse(description="Only finance finalizes statements."),
            404: OpenApiResponse(description="No such statement."),
            409: OpenApiResponse(description="Already finalized, or its month has not ended yet."),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[permissions.IsAuthenticated, CanFinalizeStatements],
    )
    def finalize(self, request, pk=None):
        """Recompute the statement one last time and freeze it with the prices it used.
        It never changes again; corrections become adjustments on the next open month."""
        statement = self.get_queryset().filter(pk=pk).first()
        if statement is None:
            raise NotFound(f"No statement {pk}.")
        try:
            services.statement_finalize(statement=statement, user=request.user)
        except services.BillingError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except FrozenError as exc:
            return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_409_CONFLICT)
        self._statement = selectors.statement_with_lines(user=request.user, pk=pk)
        return Response(self.get_serializer(self._statement).data)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            month_parameter("The month (YYYY-MM) of the statement that carries the adjustment.")
        ]
    )
)
class AdjustmentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Corrections of finalized statements, each carried by the department's next open
    statement. Read like statements (by the corrected statement's department); finance
    creates them. An adjustment is never changed or deleted: correct it with another."""

    serializer_class = AdjustmentSerializer
    filterset_class = AdjustmentFilter
    ordering_fields = ["created_at", "amount"]
    permission_classes = [OfferedMethodsOnly]
    pagination_class = ExportPagination
    renderer_classes = TABLE_RENDERERS
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return Adjustment.objects.filter(
            original__in=selectors.statements_for_user(user=self.request.user)
        ).select_related(
            "original__period", "original__department", "applied_to__period", "created_by"
        )

    def export_name(self) -> str:
        return "adjustments"

    @extend_schema(
        request=AdjustmentCreateSerializer,
        responses={
            201: AdjustmentSerializer,
            400: OpenApiResponse(
                description="Invalid fields, a statement that is still a draft, an amount "
                "finer than the currency's minor unit."
            ),
        },
    )
    def create(self, request, *args, **kwargs):
        """Correct a finalized statement: the amount is charged (or credited, when
        negative) on the department's next open statement, which is refreshed at once."""
        incoming = AdjustmentCreateSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        incoming.is_valid(raise_exception=True)
        try:
            adjustment = services.adjustment_create(user=request.user, **incoming.validated_data)
        except services.BillingError as exc:
            body = {exc.field: [str(exc)]} if exc.field else {"detail": str(exc)}
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        adjustment = self.get_queryset().get(pk=adjustment.pk)
        return Response(self.get_serializer(adjustment).data, status=status.HTTP_201_CREATED)


class ChargebackReportView(APIView):
    """The period's chargeback per department: spend and its split by GPU class, GPU-hours,
    budget use, efficiency and SLA compliance, with what was spent in the period before
    and the change (amount and percent, "new" where nothing was spent before; the period
    before is read as its statements stand, not refreshed). A period of several months (a
    quarter, a year to date, a range) is the sum of its months' statements, draft and
    finalized: the figures of the monthly reports, added up. Finance and it-admin see
    every department, the *Unallocated* row and the fleet's capacity and idle figures; a
    manager sees the departments they manage (no Unallocated, no fleet figures: null); a
    member gets an empty report, as with usage. `?format=csv` or `?format=xlsx` gives the
    rows as one
    table (a column per GPU class and per tier's SLA figure)."""

    renderer_classes = TABLE_RENDERERS

    def export_name(self) -> str:
        return f"chargeback-{getattr(self, '_label', 'report')}"

    def get_renderer_context(self):
        # A table with no rows (a member's report) still has its header row, so the CSV is
        # a table rather than an empty body.
        context = super().get_renderer_context()
        header = getattr(self, "_table_header", None)
        if header is not None:
            context["header"] = header
        return context

    @extend_schema(
        parameters=[
            ChargebackReportQuerySerializer,
            OpenApiParameter(
                "format",
                str,
                enum=["json", "csv", "xlsx"],
                description="json (default), csv or xlsx: the rows as one table.",
            ),
        ],
        responses={
            200: ChargebackReportSerializer,
            400: OpenApiResponse(
                description="The period is not a month (YYYY-MM), quarter (YYYY-Qn), year to "
                "date (YYYY-YTD) or range (YYYY-MM..YYYY-MM) that began."
            ),
        },
    )
    def get(self, request):
        query = ChargebackReportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        span = query.validated_data.get("period") or calendar.Period.month(
            calendar.month_of(timezone.now())
        )
        self._label = span.label
        report = selectors.span_chargeback_report(
            user=request.user,
            span=span,
            periods=services.periods_for_reading(span=span),
            previous=selectors.periods_as_they_stand(span=span.previous()),
        )
        data = ChargebackReportSerializer(
            report, context={"currency": report.currency, "request": request}
        ).data
        if request.accepted_renderer.format in TABLE_FORMATS:
            table = exports.chargeback_table(data)
            if not table:
                self._table_header = _chargeback_columns(data)
            return Response(table)
        return Response(data)


def _chargeback_columns(report: dict) -> list[str]:
    """The columns :func:`billing.exports.chargeback_table` gives ``report``'s rows, from a
    row with nothing in it."""
    row = dict.fromkeys(ChargebackRowSerializer().fields)
    row.update(queue_wait=[], latency=[], spend_by_gpu_class={}, spend_by_cluster={})
    return list(exports.chargeback_table({**report, "rows": [row]})[0])


class PoolReportView(APIView):
    """The month's worker pools, hour by hour, for finance and IT: per pool, GPU class and
    hour, the pods' allocation, the portal jobs' GPU time, the pool idle rest and the
    jobs' excess over the allocation (``allocation = jobs + idle - excess``). An hour whose
    excess is beyond the tolerance (one GPU-minute per GPU of each job attempt in the hour)
    is flagged, with the causes to check. `?flagged=true` lists those only;
    `?format=csv` or `?format=xlsx` as a table. Others read an empty list."""

    renderer_classes = TABLE_RENDERERS
    pagination_class = ExportPagination

    def export_name(self) -> str:
        return f"worker-pools-{getattr(self, '_label', 'report')}"

    def get_renderer_context(self):
        # A table with no rows (a manager's, or a month without pools) still has its
        # header row, so the CSV is a table rather than an empty body.
        context = super().get_renderer_context()
        context["header"] = list(PoolHourSerializer().fields)
        return context

    @extend_schema(
        parameters=[PoolQuerySerializer],
        responses={
            200: PoolHourSerializer(many=True),
            400: OpenApiResponse(description="The period is not a month (YYYY-MM) that began."),
        },
    )
    def get(self, request):
        query = PoolQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        month = query.validated_data.get("period") or calendar.month_of(timezone.now())
        period = services.period_for_reading(month=month)
        self._label = period.label
        hours = (
            selectors.pool_hours(
                period=period,
                flagged=query.validated_data.get("flagged"),
                namespace=query.validated_data.get("pool"),
            )
            if roles.sees_all_departments(request.user)
            else selectors.WorkerPoolHour.objects.none()
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(hours, request, view=self)
        if page is not None:
            return paginator.get_paginated_response(PoolHourSerializer(page, many=True).data)
        return Response(PoolHourSerializer(hours, many=True).data)


class ForecastView(APIView):
    """Month-end forecasts of GPU-hours and spend: the fleet and each GPU class (finance
    and IT), each department and each department's GPU class (a manager: the departments
    they manage; a member: no rows, as with usage). The current month is projected from
    a robust line through the last 30 portal days' use with an 80 % band
    (:mod:`billing.forecast`); an ended month answers its actual totals (status
    ``actual``, no band); a month not begun is refused (400). ``?format=csv`` or ``xlsx``
    gives the rows as one table."""

    renderer_classes = TABLE_RENDERERS

    def export_name(self) -> str:
        return f"forecast-{getattr(self, '_label', 'month')}"

    def get_renderer_context(self):
        context = super().get_renderer_context()
        if getattr(self, "_empty", False):
            context["header"] = FORECAST_HEADER
        return context

    @extend_schema(
        parameters=[
            ForecastQuerySerializer,
            OpenApiParameter(
                "format",
                str,
                enum=["json", "csv", "xlsx"],
                description="json (default), csv or xlsx.",
            ),
        ],
        responses={
            200: OpenApiResponse(
                description="{period, currency, rows: [...]}; a table of the rows in CSV/XLSX."
            ),
            400: OpenApiResponse(
                description="The period is not a month (YYYY-MM) that began, or an unknown "
                "department or GPU class."
            ),
        },
    )
    def get(self, request):
        query = ForecastQuerySerializer(data=request.query_params, context={"request": request})
        query.is_valid(raise_exception=True)
        month = query.validated_data.get("period") or calendar.month_of(timezone.now())
        period = services.period_for_reading(month=month)
        self._label = period.label
        rows = [
            ForecastRowSerializer(row).data
            for row in foresight.forecasts(
                user=request.user,
                period=period,
                department=query.validated_data.get("department"),
                gpu_class=query.validated_data.get("gpu_class"),
            )
        ]
        if request.accepted_renderer.format in TABLE_FORMATS:
            self._empty = not rows
            return Response(rows)
        return Response(
            {"period": period.label, "currency": period.currency, "method": METHOD, "rows": rows}
        )


METHOD = (
    "Robust straight line through the last 30 portal days' GPU-hours per 24 h (Theil-Sen, "
    "then least squares without the days beyond 3 MADs), projected hour by hour to the "
    "month's end; 80 % prediction band. Spend: the draft's total so far plus the projected "
    "GPU-hours still to come at the effective rate so far."
)


class SeesAllDepartments(permissions.BasePermission):
    message = "Only finance and IT read the FOCUS export: it holds every department's charges."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated) and (
            roles.sees_all_departments(request.user)
        )


class FocusExportView(APIView):
    """The month's charges in FOCUS 1.2 (the FinOps Foundation's format; docs/focus.md):
    CSV, one row per charge of every statement of the month (a line of portal jobs one row
    per job), nulls as empty cells. The BilledCost of a department's rows adds up to its
    statement's total. Finance and IT only. Errors are JSON."""

    permission_classes = [SeesAllDepartments]
    renderer_classes = [focus.FocusCSVRenderer, JSONRenderer]

    def export_name(self) -> str:
        return f"focus-{getattr(self, '_label', 'export')}"

    def finalize_response(self, request, response, *args, **kwargs):
        # The export is CSV whatever the client accepts; errors are JSON.
        if isinstance(response, Response):
            renderer = JSONRenderer() if response.status_code >= 400 else focus.FocusCSVRenderer()
            request.accepted_renderer = renderer
            request.accepted_media_type = renderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        parameters=[ChargebackQuerySerializer],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="FOCUS 1.2 columns (BillingAccountId … Tags, x_StatementStatus), "
                "one row per charge; a month without statements is the header row alone.",
            ),
            400: OpenApiResponse(description="The period is not a month (YYYY-MM) that began."),
            403: OpenApiResponse(description="Only finance and IT read the FOCUS export."),
        },
    )
    def get(self, request):
        query = ChargebackQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        month = query.validated_data.get("period") or calendar.month_of(timezone.now())
        period = services.period_for_reading(month=month)
        self._label = period.label
        return Response(focus.focus_rows(period=period))
