"""REST endpoints of sign-in: the mapping of the identity provider's groups to roles (IT
writes it, finance reads it), each person's own API tokens, and password sign-in for
scripts."""

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts import backends, selectors, tokens
from accounts.serializers import (
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    NewApiTokenSerializer,
    PasswordTokenSerializer,
    RoleMappingSerializer,
)
from core import parsers, roles
from core.ratelimits import LoginThrottle


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


SIGN_IN_REFUSED = "Unable to log in with provided credentials."


class ObtainTokenView(APIView):
    """Password sign-in for scripts: a username and password (and optionally the token's
    ``name``, ``days`` and ``read_only``) for a new personal API token, answered with its
    secret once. Sign-in attempts count with the sign-in pages' (429 past the rate).
    Passwords follow ``PASSWORD_LOGIN`` and ``PASSWORD_LOGIN_USERS`` as on the sign-in
    page: turned off, this answers 403."""

    authentication_classes = []  # it takes a password, not a token or a session
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]
    # The nesting-limited JSON parser, and forms for curl -d.
    parser_classes = [FormParser, MultiPartParser, parsers.JSONParser]
    renderer_classes = [JSONRenderer]

    @extend_schema(request=PasswordTokenSerializer, responses={200: NewApiTokenSerializer})
    def post(self, request):
        if not backends.password_login_enabled():
            raise PermissionDenied(
                "Password sign-in is turned off here. Sign in to the portal in a browser and "
                "make a personal API token on Your API tokens (/accounts/tokens/)."
            )
        serializer = PasswordTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        user = authenticate(request, username=data.pop("username"), password=data.pop("password"))
        if user is None:
            # The same words for an unknown user, a wrong password, an account switched
            # off and one that may not use a password: nothing tells them apart.
            raise ValidationError({api_settings.NON_FIELD_ERRORS_KEY: [SIGN_IN_REFUSED]})
        data.setdefault("name", tokens.sign_in_token_name())
        new = tokens.api_token_create(user=user, **data)
        return Response(NewApiTokenSerializer(new.token, context={"secret": new.secret}).data)
