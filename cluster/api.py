"""The cluster's objects over the API, for GitOps tools that pull them, and how far the
clusters drifted from them."""

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from cluster import manifests, selectors
from core import roles
from departments.models import Department


class IsItAdmin(permissions.BasePermission):
    message = "Only IT (the it-admin group) reads what the clusters should hold."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated) and roles.is_it_admin(
            request.user
        )


class YAMLRenderer(BaseRenderer):
    media_type = "application/yaml"
    format = "yaml"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Errors are JSON whatever was asked for (see the view); a body here is YAML text.
        return data.encode() if isinstance(data, str) else data


class ManifestQuerySerializer(serializers.Serializer):
    cluster = serializers.SlugField(required=False, help_text="Only this cluster (its slug).")
    department = serializers.SlugField(
        required=False, help_text="Only this department's objects and the flavors they use."
    )


class ManifestsView(APIView):
    """What the clusters should hold, as one multi-document YAML stream (each object
    preceded by a `# cluster: <slug>` comment), for `kubectl apply -f -` or a GitOps tool.
    The ETag changes exactly when the objects do: send it back as `If-None-Match` and a 304
    says nothing changed. IT only. A fleet that cannot be rendered answers 409 with every
    reason, and nothing."""

    permission_classes = [IsItAdmin]
    renderer_classes = [YAMLRenderer, JSONRenderer]

    def finalize_response(self, request, response, *args, **kwargs):
        # Errors (400, 401, 403, 409) are JSON, whatever the client accepts.
        if response.status_code >= 400 and isinstance(response, Response):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        parameters=[
            OpenApiParameter("cluster", OpenApiTypes.STR, description="A cluster's slug."),
            OpenApiParameter("department", OpenApiTypes.STR, description="A department's slug."),
        ],
        responses={
            (200, "application/yaml"): OpenApiResponse(
                {"type": "array", "items": {"type": "object"}},
                description="A multi-document YAML stream, one Kubernetes object per "
                "document, each preceded by a `# cluster: <slug>` comment.",
            ),
            304: OpenApiResponse(description="Unchanged since the ETag sent as If-None-Match."),
            400: OpenApiResponse(description="No such cluster or department."),
            403: OpenApiResponse(description="Only IT reads what the clusters should hold."),
            409: OpenApiResponse(description="The fleet cannot be rendered; `errors` says why."),
        },
    )
    def get(self, request):
        query = ManifestQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            fleet = manifests.render()
        except manifests.RenderError as exc:
            return Response(
                {
                    "detail": "The clusters' objects cannot be rendered until these are fixed "
                    "in the portal; nothing was rendered.",
                    "errors": exc.errors,
                },
                status=status.HTTP_409_CONFLICT,
            )
        cluster = query.validated_data.get("cluster")
        department = query.validated_data.get("department")
        known = [c.slug for c in fleet.clusters]
        if cluster is not None and cluster not in known:
            raise ValidationError(
                {"cluster": [f"No cluster “{cluster}” (known: {', '.join(known)})."]}
            )
        if department is not None and not any(
            m.department == department for c in fleet.clusters for m in c.manifests
        ):
            raise ValidationError(
                {"department": [f"No active department “{department}” with namespaces."]}
            )
        fleet = fleet.select(cluster=cluster, department=department)
        etag = f'"{fleet.etag()}"'
        if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
            response = HttpResponse(status=status.HTTP_304_NOT_MODIFIED)
        else:
            response = HttpResponse(
                fleet.documents(), content_type="application/yaml; charset=utf-8"
            )
        response["ETag"] = etag
        response["Cache-Control"] = "private, no-cache"
        return response


class IsItAdminForDrift(IsItAdmin):
    message = "Only IT (the it-admin group) reads the clusters' drift."


class DriftQuerySerializer(serializers.Serializer):
    cluster = serializers.SlugField(required=False, help_text="Only this cluster (its slug).")
    department = serializers.SlugField(required=False, help_text="Only this department (its slug).")

    def validate_cluster(self, value: str) -> str:
        known = [slug for slug, _ in selectors.clusters()]
        if value not in known:
            raise ValidationError(f"No cluster “{value}” (known: {', '.join(known)}).")
        return value

    def validate_department(self, value: str) -> Department:
        department = Department.objects.filter(slug=value).first()
        if department is None:
            raise ValidationError(f"No department “{value}”.")
        return department


class DriftFindingSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="Namespace, ResourceQuota or ClusterQueue.")
    namespace = serializers.CharField(help_text="Blank for objects of no namespace.")
    name = serializers.CharField()
    field = serializers.CharField(help_text="Blank: the object itself is missing.")
    wanted = serializers.CharField(help_text="What the portal rendered.")
    found = serializers.CharField(help_text="What Prometheus shows (absent: no series).")
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    notified_at = serializers.DateTimeField(allow_null=True, help_text="When IT was mailed.")


class DriftVerdictSerializer(serializers.Serializer):
    cluster = serializers.CharField()
    department = serializers.CharField(source="department.slug")
    verdict = serializers.ChoiceField(
        choices=["in_sync", "drifted", "missing", "unknown"],
        help_text="unknown: the cluster could not be compared (see error); never in sync "
        "by default.",
    )
    error = serializers.CharField()
    checked_at = serializers.DateTimeField(
        allow_null=True, help_text="The instant the last check compared."
    )
    findings = DriftFindingSerializer(many=True, help_text="The open differences.")
    warnings = serializers.ListField(child=serializers.CharField())


class DriftView(APIView):
    """Each department's objects in each cluster against what the portal renders for
    them, as the last drift check read them from Prometheus (kube-state-metrics, Kueue):
    the verdict and the open findings. IT only."""

    permission_classes = [IsItAdminForDrift]

    @extend_schema(
        parameters=[DriftQuerySerializer],
        responses={
            200: DriftVerdictSerializer(many=True),
            400: OpenApiResponse(description="No such cluster or department."),
            403: OpenApiResponse(description="Only IT reads the clusters' drift."),
        },
    )
    def get(self, request):
        query = DriftQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        verdicts = selectors.drift_verdicts(
            cluster=query.validated_data.get("cluster"),
            department=query.validated_data.get("department"),
        )
        return Response(DriftVerdictSerializer(verdicts, many=True).data)
