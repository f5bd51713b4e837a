"""finance keeps rate cards, multipliers and each month's idle-cost policy, finalizes
statements and makes adjustments; it-admin reads them."""

from django.db import migrations

from core.roles import FINANCE, IT_ADMIN, grant_group_permissions

CRUD = ("view", "add", "change", "delete")
GRANTS = {
    FINANCE: [
        *(f"billing.{action}_ratecard" for action in CRUD),
        *(f"billing.{action}_departmentmultiplier" for action in CRUD),
        "billing.view_billingperiod",
        "billing.change_billingperiod",
        "billing.view_statement",
        "billing.finalize_statement",
        "billing.view_statementline",
        "billing.view_adjustment",
        "billing.add_adjustment",
    ],
    IT_ADMIN: [
        "billing.view_ratecard",
        "billing.view_departmentmultiplier",
        "billing.view_billingperiod",
        "billing.view_statement",
        "billing.view_statementline",
        "billing.view_adjustment",
    ],
}


def grant(apps, schema_editor):
    grant_group_permissions(apps, schema_editor, GRANTS)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_initial"),
        ("jobs", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
