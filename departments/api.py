"""REST endpoints for departments and their rules: read for everyone in scope, write for
it-admin (the model permissions of :class:`core.api.ModelPermissions`)."""

from django.db.models import Prefetch
from rest_framework import mixins, viewsets

from departments import selectors, services
from departments.filters import (
    DepartmentFilter,
    OffPeakWindowFilter,
    QuotaFilter,
    ServiceLevelFilter,
)
from departments.models import Cluster, Namespace, WorkerPool
from departments.serializers import (
    ClusterSerializer,
    DepartmentSerializer,
    GpuClassSerializer,
    OffPeakWindowSerializer,
    QuotaSerializer,
    ServiceLevelSerializer,
    WorkerPoolSerializer,
)

WRITE_VERBS = ["get", "post", "patch", "delete", "head", "options"]


class DepartmentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Departments you belong to (every department for finance and it-admin). A
    department is never deleted here: set ``active`` to false and its history stays."""

    serializer_class = DepartmentSerializer
    lookup_field = "slug"
    filterset_class = DepartmentFilter
    ordering_fields = ["name", "slug", "cost_centre", "created_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return selectors.departments_for_user(user=self.request.user).prefetch_related(
            Prefetch("namespaces", queryset=Namespace.objects.select_related("cluster"))
        )


class GpuClassViewSet(viewsets.ModelViewSet):
    """The fleet's GPU classes, visible to every signed-in user."""

    serializer_class = GpuClassSerializer
    lookup_field = "slug"
    ordering_fields = ["name", "slug", "capacity_gpus"]
    http_method_names = WRITE_VERBS

    def get_queryset(self):
        return selectors.gpu_classes_for_user(user=self.request.user)

    def perform_destroy(self, gpu_class):
        services.gpu_class_delete(gpu_class=gpu_class)


class QuotaViewSet(viewsets.ModelViewSet):
    """Quotas of the departments you belong to."""

    serializer_class = QuotaSerializer
    filterset_class = QuotaFilter
    ordering_fields = ["department__name", "kind", "limit"]
    http_method_names = WRITE_VERBS

    def get_queryset(self):
        return selectors.quotas_for_user(user=self.request.user)


class ServiceLevelViewSet(viewsets.ModelViewSet):
    """Service levels (SLAs) of the departments you belong to."""

    serializer_class = ServiceLevelSerializer
    filterset_class = ServiceLevelFilter
    ordering_fields = ["department__name", "tier", "priority"]
    http_method_names = WRITE_VERBS

    def get_queryset(self):
        return selectors.service_levels_for_user(user=self.request.user)


class OffPeakWindowViewSet(viewsets.ModelViewSet):
    """The organisation's off-peak hours, visible to every signed-in user."""

    serializer_class = OffPeakWindowSerializer
    filterset_class = OffPeakWindowFilter
    ordering_fields = ["name", "start_time"]
    http_method_names = WRITE_VERBS

    def get_queryset(self):
        return selectors.off_peak_windows_for_user(user=self.request.user)


class ClusterViewSet(viewsets.ModelViewSet):
    """The fleet's Kubernetes clusters, visible to every signed-in user; it-admin keeps them.
    Namespaces are claimed as ``<cluster>/<name>`` in one of them (or by name in all)."""

    serializer_class = ClusterSerializer
    lookup_field = "slug"
    ordering_fields = ["name", "slug"]
    http_method_names = WRITE_VERBS

    def get_queryset(self):
        user = self.request.user
        return Cluster.objects.all() if user.is_authenticated else Cluster.objects.none()


class WorkerPoolViewSet(viewsets.ModelViewSet):
    """Namespaces where the portal's GPU workers run, visible to every signed-in user;
    it-admin marks them. The GPU time of the portal jobs run there is billed to the
    submitting departments, the rest of the pool's allocation as pool idle."""

    serializer_class = WorkerPoolSerializer
    ordering_fields = ["namespace"]
    http_method_names = WRITE_VERBS

    def get_queryset(self):
        if not self.request.user.is_authenticated:
            return WorkerPool.objects.none()
        return WorkerPool.objects.select_related("cluster")
