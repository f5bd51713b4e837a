"""On PostgreSQL, the database itself refuses to change or delete a finalized statement or
its lines, whoever asks (a shell, raw SQL, a script): the models refuse too, on every
database, but only for callers that go through them."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION billing_refuse_finalized_statement() RETURNS trigger AS $$
BEGIN
    IF OLD.status = 'finalized' THEN
        RAISE EXCEPTION 'statement % is finalized; it never changes', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_statement_frozen
    BEFORE UPDATE OR DELETE ON billing_statement
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_finalized_statement();

CREATE FUNCTION billing_refuse_finalized_line() RETURNS trigger AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM billing_statement
        WHERE id IN (OLD.statement_id, CASE WHEN TG_OP = 'UPDATE' THEN NEW.statement_id END)
          AND status = 'finalized'
    ) THEN
        RAISE EXCEPTION 'line % belongs to a finalized statement; it never changes', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_statementline_frozen
    BEFORE UPDATE OR DELETE ON billing_statementline
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_finalized_line();

CREATE FUNCTION billing_refuse_line_into_finalized() RETURNS trigger AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM billing_statement WHERE id = NEW.statement_id AND status = 'finalized'
    ) THEN
        RAISE EXCEPTION 'statement % is finalized; no line can be added to it', NEW.statement_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_statementline_no_insert_into_frozen
    BEFORE INSERT ON billing_statementline
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_line_into_finalized();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS billing_statementline_no_insert_into_frozen ON billing_statementline;
DROP FUNCTION IF EXISTS billing_refuse_line_into_finalized();
DROP TRIGGER IF EXISTS billing_statementline_frozen ON billing_statementline;
DROP FUNCTION IF EXISTS billing_refuse_finalized_line();
DROP TRIGGER IF EXISTS billing_statement_frozen ON billing_statement;
DROP FUNCTION IF EXISTS billing_refuse_finalized_statement();
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
    dependencies = [("billing", "0002_roles")]

    operations = [migrations.RunPython(forward, backward)]
