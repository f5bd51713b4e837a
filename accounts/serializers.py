from rest_framework import serializers

from accounts.models import RoleMapping
from core.api import ModelValidationMixin
from departments.models import Department


class RoleMappingSerializer(ModelValidationMixin, serializers.ModelSerializer):
    department = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Department.objects.all(),
        allow_null=True,
        required=False,
        help_text="For manager and member: the department's slug; null for finance and it-admin.",
    )

    class Meta:
        model = RoleMapping
        fields = ["id", "group", "role", "department", "note", "created_at"]
        read_only_fields = ["id", "created_at"]
