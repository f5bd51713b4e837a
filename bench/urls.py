"""The portal's URLs plus the two floors that ``bench/admission.py`` holds job submission
against. Bench only; never deployed.

``bench/baseline/`` does what any authenticated write of a job row must do and nothing
more: DRF token authentication, ``IsAuthenticated``, parsing the JSON body, one ``INSERT``
of a :class:`~jobs.models.GenerationJob` (in the bench's own department, state
``rejected``, so it counts against no quota), and a small JSON answer with 201.

``bench/drf-baseline/`` is that insert with the submission's own DRF work around it: the
same token authentication, the request read by :class:`~jobs.serializers.JobSubmitSerializer`
(``is_valid``: the department among the user's, the kind, the GPU class looked up), and
the created job answered by :class:`~jobs.serializers.JobSerializer`. No admission: no
service level, no lock, no quota.
"""

import functools

from django.urls import include, path
from rest_framework import permissions, status
from rest_framework.authentication import TokenAuthentication
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from departments.models import Department, GpuClass
from jobs.models import GenerationJob, JobKind, JobState
from jobs.serializers import JobSerializer, JobSubmitSerializer

BASELINE_DEPARTMENT = "bench-baseline"
BASELINE_KIND = "bench-small"
BASELINE_GPU_CLASS = "t4"


@functools.cache
def _baseline_rows() -> tuple[Department, GpuClass]:
    """The department and default GPU class of the DRF baseline's rows, read once per
    process (admission has both in hand when it answers)."""
    return (
        Department.objects.get(slug=BASELINE_DEPARTMENT),
        GpuClass.objects.get(slug=BASELINE_GPU_CLASS),
    )


@functools.cache
def _targets() -> tuple[int, int, int]:
    """The ids the baseline rows point at, looked up once per process."""
    return (
        Department.objects.values_list("pk", flat=True).get(slug=BASELINE_DEPARTMENT),
        JobKind.objects.values_list("pk", flat=True).get(slug=BASELINE_KIND),
        GpuClass.objects.values_list("pk", flat=True).get(slug=BASELINE_GPU_CLASS),
    )


class BaselineView(APIView):
    authentication_classes = [TokenAuthentication]
    permission_classes = [permissions.IsAuthenticated]
    renderer_classes = [JSONRenderer]

    def post(self, request):
        department_id, kind_id, gpu_class_id = _targets()
        params = request.data.get("params") if isinstance(request.data, dict) else None
        job = GenerationJob.objects.create(
            department_id=department_id,
            submitter=request.user,
            kind_id=kind_id,
            params=params if isinstance(params, dict) else {},
            tier=str(request.data.get("tier", "batch"))[:16],
            gpu_class_id=gpu_class_id,
            gpus=1,
            max_runtime_s=600,
            priority=0,
            state=JobState.REJECTED,
            reason="bench baseline row",
        )
        return Response({"id": str(job.pk), "state": job.state}, status=status.HTTP_201_CREATED)


class DrfBaselineView(APIView):
    authentication_classes = [TokenAuthentication]
    permission_classes = [permissions.IsAuthenticated]
    renderer_classes = [JSONRenderer]

    def post(self, request):
        context = self.get_serializer_context()
        incoming = JobSubmitSerializer(data=request.data, context=context)
        incoming.is_valid(raise_exception=True)
        submitted = incoming.validated_data
        kind = submitted["kind"]
        department, default_class = _baseline_rows()
        job = GenerationJob.objects.create(
            department=department,  # counts against no quota
            submitter=request.user,
            kind=kind,
            params=submitted["params"],
            tier=submitted["tier"],
            gpu_class=submitted.get("gpu_class") or default_class,
            gpus=kind.default_gpus,
            max_runtime_s=kind.max_runtime_s,
            priority=0,
            idempotency_key=submitted["idempotency_key"],
            state=JobState.REJECTED,
            reason="bench DRF baseline row",
        )
        return Response(
            JobSerializer(job, context=context).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": request.build_absolute_uri(f"{job.pk}/")},
        )

    def get_serializer_context(self) -> dict:
        return {"request": self.request, "format": self.format_kwarg, "view": self}


urlpatterns = [
    path("bench/baseline/", BaselineView.as_view(), name="bench-baseline"),
    path("bench/drf-baseline/", DrfBaselineView.as_view(), name="bench-drf-baseline"),
    path("", include("portal.urls")),
]
