from django.conf import settings
from rest_framework import serializers

from accounts.models import ApiToken, RoleMapping, TokenStatus
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


# --- Personal API tokens ------------------------------------------------------------------


class ApiTokenSerializer(serializers.ModelSerializer):
    """A personal API token as its owner sees it: never its secret, nor its hash."""

    prefix = serializers.CharField(
        read_only=True, help_text="The secret's first characters, to recognise it."
    )
    status = serializers.ChoiceField(
        choices=TokenStatus.choices,
        read_only=True,
        help_text="active, expired, or revoked (revoked wins over expired).",
    )

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "read_only",
            "status",
            "created_at",
            "expires_at",
            "last_used_at",
            "last_used_from",
            "revoked_at",
        ]
        read_only_fields = fields


class NewApiTokenSerializer(ApiTokenSerializer):
    """A token just made, with its secret: in this answer once, never again."""

    token = serializers.SerializerMethodField(
        help_text="The secret (gcp_…): send it as 'Authorization: Bearer <token>'. "
        "Shown in this answer only; the portal keeps its hash."
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields

    def get_token(self, token: ApiToken) -> str:
        return self.context["secret"]


class ApiTokenCreateSerializer(serializers.Serializer):
    """What a new token needs: a name, and optionally its lifetime and whether it only
    reads. The longest lifetime is the settings' when the request is read."""

    name = serializers.CharField(
        max_length=100, help_text="What the token is for, to tell it apart later."
    )
    read_only = serializers.BooleanField(
        default=False, help_text="A read-only token reads; any write with it is refused (403)."
    )

    def get_fields(self):
        fields = super().get_fields()
        fields["days"] = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=settings.API_TOKEN_MAX_DAYS,
            help_text=f"How many days it lives: 1 to {settings.API_TOKEN_MAX_DAYS}, "
            f"{settings.API_TOKEN_DEFAULT_DAYS} when not given.",
        )
        return fields


class PasswordTokenSerializer(ApiTokenCreateSerializer):
    """Password sign-in for a script: a username and password for a new personal token."""

    username = serializers.CharField(max_length=150)
    password = serializers.CharField(
        max_length=4096, trim_whitespace=False, write_only=True, style={"input_type": "password"}
    )
    name = serializers.CharField(
        max_length=100,
        required=False,
        help_text="What the token is for; 'API sign-in <date>' when not given.",
    )
