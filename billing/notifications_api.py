"""The API of alert channels and their deliveries (``/api/v1/alert-channels/``,
``/api/v1/alert-deliveries/``).

Finance and IT read every department's; a manager reads and writes their departments'
channels; a member sees none. IT writes any department's channels and alone may let one
reach private addresses. A channel of a department the user may not see answers 404; a
write by someone who may write none answers 403 before any lookup.
"""

from django.db.models import QuerySet
from rest_framework import permissions, serializers, viewsets

from billing import notifications
from billing.notifications_http import UrlRefused
from billing.notifications_models import AlertChannel, ChannelKind, Delivery
from core import roles
from departments.models import Department, Membership


def managed_department_ids(user) -> set[int]:
    if not user.is_authenticated:
        return set()
    return set(
        Membership.objects.filter(user=user, role=Membership.Role.MANAGER).values_list(
            "department_id", flat=True
        )
    )


def channels_for_user(*, user) -> QuerySet[AlertChannel]:
    channels = AlertChannel.objects.select_related("department")
    if roles.sees_all_departments(user):
        return channels
    return channels.filter(department__in=managed_department_ids(user))


def deliveries_for_user(*, user) -> QuerySet[Delivery]:
    return Delivery.objects.select_related("channel__department").filter(
        channel__in=channels_for_user(user=user)
    )


class WritesChannels(permissions.BasePermission):
    """Reads: anyone signed in (scoped); writes: IT, or a manager of some department."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        return roles.is_it_admin(user) or bool(managed_department_ids(user))


class AlertChannelSerializer(serializers.ModelSerializer):
    department = serializers.SlugRelatedField(slug_field="slug", queryset=Department.objects.all())
    emails = serializers.ListField(child=serializers.EmailField(), required=False)
    secret = serializers.SerializerMethodField(
        help_text="The webhook's signing secret (Standard Webhooks, whsec_...): in the answer "
        "to the request that made the channel, and never again."
    )

    class Meta:
        model = AlertChannel
        fields = [
            "id",
            "department",
            "name",
            "kind",
            "emails",
            "url",
            "preset",
            "allow_private",
            "active",
            "secret",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not roles.is_it_admin(user):
            self.fields["allow_private"].read_only = True
            self.fields["department"].queryset = Department.objects.filter(
                pk__in=managed_department_ids(user)
            )

    def get_secret(self, channel) -> str | None:
        if self.context.get("show_secret") and channel.kind == ChannelKind.WEBHOOK:
            return channel.secret
        return None

    def validate(self, attrs):
        merged = {
            "kind": attrs.get("kind", getattr(self.instance, "kind", None)),
            "url": attrs.get("url", getattr(self.instance, "url", "")),
            "emails": attrs.get("emails", getattr(self.instance, "emails", [])),
            "allow_private": attrs.get(
                "allow_private", getattr(self.instance, "allow_private", False)
            ),
        }
        if merged["kind"] == ChannelKind.EMAIL and not merged["emails"]:
            raise serializers.ValidationError({"emails": "An e-mail channel needs an address."})
        # A channel that will not send (switched off) needs no check of where it would send:
        # one whose host moved into a private range can still be switched off. Switching it
        # on checks it again, as every sending does.
        sends = attrs.get("active", getattr(self.instance, "active", True))
        if merged["kind"] == ChannelKind.WEBHOOK:
            if not merged["url"]:
                raise serializers.ValidationError({"url": "A webhook needs its URL."})
            if not sends:
                return attrs
            try:
                notifications.channel_check(AlertChannel(**merged))
            except UrlRefused as exc:
                raise serializers.ValidationError({"url": str(exc)}) from exc
        return attrs


class DeliverySerializer(serializers.ModelSerializer):
    channel = serializers.PrimaryKeyRelatedField(read_only=True)
    department = serializers.SlugRelatedField(
        source="channel.department", slug_field="slug", read_only=True
    )

    class Meta:
        model = Delivery
        fields = [
            "id",
            "channel",
            "department",
            "event_key",
            "event_type",
            "subject",
            "status",
            "attempts",
            "last_status_code",
            "last_answer",
            "last_error",
            "next_attempt_at",
            "sent_at",
            "created_at",
        ]
        read_only_fields = fields


class AlertChannelViewSet(viewsets.ModelViewSet):
    """Where a department's alerts go besides its managers' mailboxes: e-mail addresses,
    or a webhook signed as Standard Webhooks sign (generic JSON, Slack or Teams). A webhook
    URL must reach a public address over http(s) (400 otherwise)."""

    serializer_class = AlertChannelSerializer
    permission_classes = [WritesChannels]
    queryset = AlertChannel.objects.none()  # the schema's; requests read get_queryset
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return channels_for_user(user=self.request.user).order_by("department__name", "name")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "show_secret": self.action == "create"}

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user)


class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    """Each alert's delivery to each channel: status, attempts, the last answer."""

    serializer_class = DeliverySerializer
    permission_classes = [permissions.IsAuthenticated]
    queryset = Delivery.objects.none()  # the schema's; requests read get_queryset

    def get_queryset(self):
        return deliveries_for_user(user=self.request.user)
