"""On PostgreSQL, the database refuses to change, delete or add the jobs behind a line of
a finalized statement, as it does for the line itself (billing/0003)."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION billing_refuse_finalized_line_job() RETURNS trigger AS $$
DECLARE
    line_id bigint := CASE WHEN TG_OP = 'INSERT' THEN NEW.line_id ELSE OLD.line_id END;
BEGIN
    IF EXISTS (
        SELECT 1 FROM billing_statementline l JOIN billing_statement s ON s.id = l.statement_id
        WHERE l.id IN (line_id, CASE WHEN TG_OP = 'UPDATE' THEN NEW.line_id END)
          AND s.status = 'finalized'
    ) THEN
        RAISE EXCEPTION 'line % belongs to a finalized statement; its jobs never change', line_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_statementlinejob_frozen
    BEFORE INSERT OR UPDATE OR DELETE ON billing_statementlinejob
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_finalized_line_job();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS billing_statementlinejob_frozen ON billing_statementlinejob;
DROP FUNCTION IF EXISTS billing_refuse_finalized_line_job();
"""


def _run(schema_editor, sql: str) -> None:
    if schema_editor.connection.vendor == "postgresql":
        # A cursor without parameters: the % of RAISE is PL/pgSQL's, not a placeholder.
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(sql)


def forward(apps, schema_editor):
    _run(schema_editor, FORWARD)


def backward(apps, schema_editor):
    _run(schema_editor, BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("billing", "0008_portal_jobs_and_worker_pools")]

    operations = [migrations.RunPython(forward, backward)]
