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
        default=None,
        help_text="For manager and member: the department's slug; null for finance and it-admin.",
    )

    class Meta:
        model = RoleMapping
        fields = ["id", "group", "role", "department", "note", "created_at"]
        read_only_fields = ["id", "created_at"]
        # The model's own constraints, checked by ModelValidationMixin with the admin's
        # words; DRF's unique-together check would make the department required.
        validators = []
