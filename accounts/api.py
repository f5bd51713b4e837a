"""REST endpoints of sign-in: the mapping of the identity provider's groups to roles (IT
writes it, finance reads it)."""

from rest_framework import viewsets

from accounts import selectors
from accounts.serializers import RoleMappingSerializer
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
