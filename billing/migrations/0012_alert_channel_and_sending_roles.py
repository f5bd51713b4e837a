"""it-admin configures every department's alert channels and watches their deliveries;
finance reads them, and mails statements (re-sends, retries) through their sendings."""

from django.db import migrations

from core.roles import FINANCE, IT_ADMIN, grant_group_permissions

GRANTS = {
    FINANCE: [
        "billing.view_alertchannel",
        "billing.view_delivery",
        "billing.view_statementsending",
        "billing.add_statementsending",
        "billing.change_statementsending",
    ],
    IT_ADMIN: [
        "billing.view_alertchannel",
        "billing.add_alertchannel",
        "billing.change_alertchannel",
        "billing.delete_alertchannel",
        "billing.view_delivery",
        "billing.change_delivery",
        "billing.view_statementsending",
    ],
}


def grant(apps, schema_editor):
    grant_group_permissions(apps, schema_editor, GRANTS)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0011_alert_channels_deliveries_and_statement_sendings"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
