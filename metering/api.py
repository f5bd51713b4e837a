"""REST endpoints of the metering ledger: read-only, scoped to the usage a user may read."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.response import Response
from rest_framework.settings import api_settings

from core.api import ExportPagination, XLSXRenderer
from metering import selectors
from metering.filters import UsageQuery
from metering.serializers import UsageRowSerializer


class UsageViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Metered usage per period, department and GPU class, from one metric source.

    Finance and it-admin read every department and the *Unallocated* rows (usage no
    department owns); a manager reads the departments they manage; a member reads none
    (members see their own jobs). `?format=csv` or `?format=xlsx` gives the whole table as
    CSV or as a spreadsheet with the same columns.
    """

    serializer_class = UsageRowSerializer
    renderer_classes = [*api_settings.DEFAULT_RENDERER_CLASSES, XLSXRenderer]
    pagination_class = ExportPagination
    # The rows are aggregates, filtered by the validated query below, not by filter backends.
    filter_backends = []

    def get_queryset(self):
        return selectors.usage_for_user(user=self.request.user)

    @extend_schema(parameters=[UsageQuery])
    def list(self, request, *args, **kwargs):
        query = UsageQuery(data=request.query_params, context=self.get_serializer_context())
        query.is_valid(raise_exception=True)
        rows = selectors.usage_summary(records=self.get_queryset(), **query.validated_data)
        page = self.paginate_queryset(rows)
        if page is not None:
            return self.get_paginated_response(self.get_serializer(page, many=True).data)
        return Response(self.get_serializer(rows, many=True).data)
