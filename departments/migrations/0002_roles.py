"""The organisation-wide roles: finance reads every department's rules; it-admin manages
them. Later apps grant their own models' permissions in their own migrations."""

from django.db import migrations

from core.roles import FINANCE, IT_ADMIN, grant_group_permissions

MODELS = [
    "department",
    "namespace",
    "membership",
    "gpuclass",
    "quota",
    "servicelevel",
    "offpeakwindow",
]

GRANTS = {
    FINANCE: [f"departments.view_{model}" for model in MODELS],
    IT_ADMIN: [
        f"departments.{action}_{model}"
        for model in MODELS
        for action in ("view", "add", "change", "delete")
    ]
    # IT assigns people to departments, so it looks users up; creating or editing
    # accounts (and their superuser flag) stays with superusers or the identity provider.
    + ["auth.view_user", "auth.view_group"],
}


def grant(apps, schema_editor):
    grant_group_permissions(apps, schema_editor, GRANTS)


class Migration(migrations.Migration):
    dependencies = [
        ("departments", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
