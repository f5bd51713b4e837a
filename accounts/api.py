"""REST endpoints of sign-in: the mapping of the identity provider's groups to roles (IT
writes it, finance reads it), and each person's own API tokens."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from accounts import selectors, tokens
from accounts.serializers import (
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    NewApiTokenSerializer,
    RoleMappingSerializer,
)
from core import roles


class RoleMappingViewSet(viewsets.ModelViewSet):
    """Which group of the identity provider gives which role. Applied at each person's
    next sign-in (or API call with the provider's token): added roles appear, roles of a
    group they left go; roles IT set by hand are never touched."""

    serializer_class = RoleMappingSerializer
    filterset_fields = ["role"]
    ordering_fields = ["group", "role", "created_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if not roles.sees_all_departments(self.request.user):
            return selectors.role_mappings().none()
        return selectors.role_mappings()


class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your own personal API tokens: list them, make one (its secret is in that answer
    only), revoke one. Anyone signed in manages their own; nobody sees another's here
    (404). A read-only token may list them but neither make nor revoke one."""

    serializer_class = ApiTokenSerializer
    permission_classes = [IsAuthenticated]
    ordering_fields = ["created_at", "expires_at", "last_used_at", "name"]

    def get_queryset(self):
        return selectors.api_tokens_of(user=self.request.user)

    @extend_schema(request=ApiTokenCreateSerializer, responses={201: NewApiTokenSerializer})
    def create(self, request):
        """Make a token; the answer holds its secret (``token``), shown this once."""
        serializer = ApiTokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        new = tokens.api_token_create(user=request.user, **serializer.validated_data)
        answer = NewApiTokenSerializer(new.token, context={"secret": new.secret})
        return Response(answer.data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ApiTokenSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        """Revoke the token now; one already revoked keeps its first revocation."""
        token = tokens.api_token_revoke(token=self.get_object(), by=request.user)
        return Response(ApiTokenSerializer(token).data)
