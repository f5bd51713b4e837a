"""it-admin manages job kinds and steers jobs in the admin; finance reads them."""

from django.db import migrations

from core.roles import FINANCE, IT_ADMIN, grant_group_permissions

GRANTS = {
    FINANCE: ["jobs.view_jobkind", "jobs.view_generationjob", "jobs.view_quotaalert"],
    IT_ADMIN: [
        *(f"jobs.{action}_jobkind" for action in ("view", "add", "change", "delete")),
        "jobs.view_generationjob",
        # Cancel and requeue actions in the admin; the fields themselves stay read-only.
        "jobs.change_generationjob",
        "jobs.view_quotaalert",
    ],
}


def grant(apps, schema_editor):
    grant_group_permissions(apps, schema_editor, GRANTS)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0001_initial"),
        ("departments", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
