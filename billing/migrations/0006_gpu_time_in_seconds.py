"""Statements, their lines, adjustments and the month's figures keep GPU time in exact
GPU-seconds (as the ledger now does); pages and exports show it in GPU-hours to 0.01.

The stored GPU-hours become GPU-seconds (× 3600, exact). No amount changes. On PostgreSQL
the triggers that refuse any change to a finalized statement are held for this one
conversion of units, inside the migration's transaction, and restored before it commits.
"""

from django.db import migrations, models
from django.db.models import F

HOLD = """
ALTER TABLE billing_statement DISABLE TRIGGER billing_statement_frozen;
ALTER TABLE billing_statementline DISABLE TRIGGER billing_statementline_frozen;
"""
RESTORE = """
ALTER TABLE billing_statement ENABLE TRIGGER billing_statement_frozen;
ALTER TABLE billing_statementline ENABLE TRIGGER billing_statementline_frozen;
"""
PERIOD_FIGURES = ("capacity", "unallocated", "idle", "unpriced")


def _scale(apps, schema_editor, to_seconds: bool):
    postgres = schema_editor.connection.vendor == "postgresql"
    if postgres:
        schema_editor.execute(HOLD)
    for model, fields in (
        ("Statement", ["gpu_seconds"]),
        ("HistoricalStatement", ["gpu_seconds"]),
        ("StatementLine", ["gpu_seconds"]),
        ("Adjustment", ["gpu_seconds"]),
        ("BillingPeriod", [f"{name}_gpu_seconds" for name in PERIOD_FIGURES]),
    ):
        # A plain manager: the models' own refuse bulk updates of finalized rows.
        manager = models.Manager()
        manager.model = apps.get_model("billing", model)
        manager.update(
            **{field: F(field) * 3600 if to_seconds else F(field) / 3600 for field in fields}
        )
    if postgres:
        schema_editor.execute(RESTORE)


def to_seconds(apps, schema_editor):
    _scale(apps, schema_editor, to_seconds=True)


def to_hours(apps, schema_editor):
    _scale(apps, schema_editor, to_seconds=False)


def _seconds_field(**kwargs):
    return models.DecimalField(decimal_places=6, default=0, max_digits=18, **kwargs)


class Migration(migrations.Migration):
    dependencies = [("billing", "0005_billing_period_history")]

    operations = [
        *[
            migrations.RenameField(
                model_name="billingperiod",
                old_name=f"{name}_gpu_hours",
                new_name=f"{name}_gpu_seconds",
            )
            for name in PERIOD_FIGURES
        ],
        migrations.AlterField(
            model_name="billingperiod",
            name="unpriced_gpu_seconds",
            field=_seconds_field(
                help_text="Usage no rate card priced (no card valid then, or an unknown GPU model)."
            ),
        ),
        migrations.RenameField(
            model_name="statement", old_name="gpu_hours", new_name="gpu_seconds"
        ),
        migrations.RenameField(
            model_name="historicalstatement", old_name="gpu_hours", new_name="gpu_seconds"
        ),
        migrations.RenameField(
            model_name="statementline", old_name="gpu_hours", new_name="gpu_seconds"
        ),
        migrations.RenameField(
            model_name="adjustment", old_name="gpu_hours", new_name="gpu_seconds"
        ),
        *[
            migrations.AlterField(
                model_name=model,
                name="gpu_seconds",
                field=_seconds_field(
                    verbose_name="GPU-seconds",
                    help_text="GPU time of its usage lines (exact); shown as GPU-hours.",
                ),
            )
            for model in ("statement", "historicalstatement")
        ],
        *[
            migrations.AlterField(
                model_name=model,
                name="gpu_seconds",
                field=_seconds_field(verbose_name="GPU-seconds"),
            )
            for model in ("statementline", "adjustment")
        ],
        migrations.RunPython(to_seconds, to_hours),
    ]
