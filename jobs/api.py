"""REST endpoints of jobs: submit, list, read, cancel, download outputs; and job kinds
(read for everyone, write for it-admin)."""

from pathlib import Path

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core import ratelimits
from core.api import TABLE_FORMATS, error_detail
from jobs import runner, selectors, services
from jobs.filters import JobFilter, JobKindFilter
from jobs.models import GenerationJob, JobState
from jobs.serializers import (
    JobCancelRefusalSerializer,
    JobKindSerializer,
    JobRefusalSerializer,
    JobRowSerializer,
    JobSerializer,
    JobSubmitSerializer,
)


class JobKindViewSet(viewsets.ModelViewSet):
    """What GPU workers can run. Everyone signed in reads them; it-admin writes them."""

    serializer_class = JobKindSerializer
    lookup_field = "slug"
    filterset_class = JobKindFilter
    ordering_fields = ["name", "slug", "max_runtime_s"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return selectors.job_kinds_for_user(user=self.request.user)


def refusal_body(job: GenerationJob, context) -> dict:
    """The 409 answer to a refused submission (:class:`JobRefusalSerializer`)."""
    return JobRefusalSerializer(job, context=context).data


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Generation jobs. Finance and it-admin see every job, a department's managers its
    jobs, a member the jobs they submitted. Members and managers submit for their
    departments. `?format=csv` gives the list as CSV."""

    serializer_class = JobSerializer
    filterset_class = JobFilter
    ordering_fields = ["submitted_at", "priority", "state", "finished_at"]
    # Submitting is decided by department membership in the service, not by model
    # permissions (members hold none).
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self):
        return selectors.jobs_for_user(user=self.request.user)

    def get_serializer_class(self):
        renderer = getattr(self.request, "accepted_renderer", None)
        if renderer is not None and renderer.format in TABLE_FORMATS:
            return JobRowSerializer
        return JobSerializer

    def get_throttles(self):
        # Submitting is limited per user (JOBS_SUBMIT_RATE), counted with the submit form.
        if self.action == "create":
            return [ratelimits.JobSubmitThrottle()]
        return super().get_throttles()

    @extend_schema(
        request=JobSubmitSerializer,
        responses={
            201: JobSerializer,
            200: OpenApiResponse(
                JobSerializer,
                description="The idempotency key named an "
                "earlier job, which is returned; nothing new was created.",
            ),
            400: OpenApiResponse(
                description="Invalid fields or parameters, or a department you are not a "
                "manager or member of (it is not among yours)."
            ),
            # Department membership is checked with the fields (400 above): the only 403 is
            # the one every session write gets without its CSRF token.
            403: OpenApiResponse(
                description="Signed in with a session cookie but sent no CSRF token "
                "(`X-CSRFToken`); token authentication never gets this."
            ),
            409: OpenApiResponse(JobRefusalSerializer, description="Refused by a quota."),
        },
    )
    def create(self, request, *args, **kwargs):
        """Submit a job: it is admitted (queued), made to wait with the reason, or refused
        with the quota that refused it (409)."""
        incoming = JobSubmitSerializer(data=request.data, context=self.get_serializer_context())
        incoming.is_valid(raise_exception=True)
        submission = services.job_submit(user=request.user, **incoming.validated_data)
        job = submission.job  # every object the answer shows is already attached
        context = self.get_serializer_context()
        if submission.waiting_position is not None:
            context["waiting_positions"] = {job.pk: submission.waiting_position}
        if job.state == JobState.REJECTED:
            return Response(refusal_body(job, context), status=status.HTTP_409_CONFLICT)
        code = status.HTTP_201_CREATED if submission.created else status.HTTP_200_OK
        return Response(
            JobSerializer(job, context=context).data,
            status=code,
            headers={"Location": request.build_absolute_uri(f"{job.pk}/")},
        )

    @extend_schema(
        request=None,
        responses={
            200: JobSerializer,
            409: OpenApiResponse(
                JobCancelRefusalSerializer, description="The job has already ended."
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a job: at once when it waits or is queued; a running job is stopped by
        its worker within a heartbeat (its state says so when done)."""
        job = self.get_object()
        try:
            job = services.job_cancel(job=job, user=request.user)
        except DjangoValidationError as exc:
            return Response(error_detail(exc), status=status.HTTP_409_CONFLICT)
        return Response(self.get_serializer(self.get_queryset().get(pk=job.pk)).data)

    # The log is shown as text, an output file as what its name says it is.
    @extend_schema(responses={(200, "*/*"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], url_path=r"files/(?P<name>[^/]+)", url_name="files")
    def files(self, request, pk=None, name=None, format=None):  # the router passes format
        """Download a file the job wrote, or its log (`job.log`)."""
        job = self.get_object()
        return job_file_response(job, name)


def job_file_response(job: GenerationJob, name: str) -> FileResponse:
    """A file of ``job`` by name: one it listed as output, or its log; 404 otherwise."""
    allowed = set(job.result_files or []) | ({runner.LOG_NAME} if job.started_at else set())
    if name not in allowed:
        raise Http404("The job has no such file.")
    folder = runner.job_folder(job).resolve()
    path = (folder / name).resolve()
    if path.parent != folder or not path.is_file():
        raise Http404("The file is gone.")
    if name == runner.LOG_NAME:  # read in the browser, as text
        return FileResponse(path.open("rb"), content_type="text/plain; charset=utf-8")
    return FileResponse(path.open("rb"), as_attachment=True, filename=Path(name).name)
