"""IT reads the drift checks and findings in the admin; they are written by checks only."""

from django.db import migrations

from core.roles import IT_ADMIN, grant_group_permissions

GRANTS = {IT_ADMIN: ["cluster.view_driftcheck", "cluster.view_driftfinding"]}


def grant(apps, schema_editor):
    grant_group_permissions(apps, schema_editor, GRANTS)


class Migration(migrations.Migration):
    dependencies = [
        ("cluster", "0001_drift"),
        ("departments", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
