"""The portal's URLs plus ``bench/baseline/``: the floor that ``bench/admission.py`` holds
job submission against. Bench only; never deployed.

The baseline does what any authenticated write of a job row must do and nothing more:
DRF token authentication, ``IsAuthenticated``, parsing the JSON body, one ``INSERT`` of a
:class:`~jobs.models.GenerationJob` (in the bench's own department, state ``rejected``, so
it counts against no quota), and a small JSON answer with 201.
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

BASELINE_DEPARTMENT = "bench-baseline"
BASELINE_KIND = "bench-small"
BASELINE_GPU_CLASS = "t4"


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


urlpatterns = [
    path("bench/baseline/", BaselineView.as_view(), name="bench-baseline"),
    path("", include("portal.urls")),
]
