"""IT keeps the mapping of the identity provider's groups to roles and sees who signed in
from where; finance reads the mapping. Tokens are their owners' own: IT sees them and can
revoke one (a change), nobody makes one for somebody else."""

from django.db import migrations

from core.roles import FINANCE, IT_ADMIN, grant_group_permissions

GRANTS = {
    FINANCE: ["accounts.view_rolemapping"],
    IT_ADMIN: [
        "accounts.view_rolemapping",
        "accounts.add_rolemapping",
        "accounts.change_rolemapping",
        "accounts.delete_rolemapping",
        "accounts.view_provideridentity",
        "accounts.view_providergrant",
        "accounts.view_apitoken",
        "accounts.change_apitoken",
    ],
}


def grant(apps, schema_editor):
    grant_group_permissions(apps, schema_editor, GRANTS)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("departments", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
