"""Who may see and do what, shared by every app.

Two Django groups carry the organisation-wide roles: ``finance`` (reads everything, manages
rate cards and statements) and ``it-admin`` (manages departments, GPU classes, quotas,
SLAs, job kinds and metric sources). Everyone else sees only the departments they are a
member of (``departments.Membership``). What each group may change is expressed as Django
model permissions, granted by data migrations through :func:`grant_group_permissions`, so
the admin and the API apply the same rule.
"""

from collections.abc import Iterable, Mapping

FINANCE = "finance"
IT_ADMIN = "it-admin"
ORGANISATION_GROUPS = (FINANCE, IT_ADMIN)


def group_names(user) -> frozenset[str]:
    """The user's group names, read once per user object (i.e. once per request)."""
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_portal_group_names", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._portal_group_names = cached
    return cached


def is_finance(user) -> bool:
    return user.is_active and (user.is_superuser or FINANCE in group_names(user))


def is_it_admin(user) -> bool:
    return user.is_active and (user.is_superuser or IT_ADMIN in group_names(user))


def sees_all_departments(user) -> bool:
    """Finance, IT and superusers read every department; others only their own."""
    return is_finance(user) or is_it_admin(user)


def can_use_admin(user) -> bool:
    """The Django admin is the workplace of finance and IT (and of staff superusers)."""
    return user.is_active and (user.is_staff or sees_all_departments(user))


def grant_group_permissions(apps, schema_editor, grants: Mapping[str, Iterable[str]]) -> None:
    """Create the groups in ``grants`` and add to each the permissions named
    ``"app_label.codename"``. Additive and idempotent, for use in data migrations.

    Permissions are normally created after ``migrate`` finishes; this creates them first
    for every app in the migration state so that the grant can refer to them.
    """
    from django.contrib.auth.management import create_permissions

    alias = schema_editor.connection.alias
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=alias)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, names in grants.items():
        group, _ = Group.objects.using(alias).get_or_create(name=group_name)
        for name in names:
            app_label, codename = name.split(".", 1)
            permission = Permission.objects.using(alias).get(
                content_type__app_label=app_label, codename=codename
            )
            group.permissions.add(permission)
