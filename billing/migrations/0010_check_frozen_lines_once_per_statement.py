"""On PostgreSQL, the guards that keep a finalized statement's lines and their jobs as they
are (billing/0003, billing/0009) check each SQL statement's rows at once instead of one row
at a time.

The row-by-row guards looked up the statement of every line written or deleted with a
query whose plan PL/pgSQL keeps for the session: planned while ``billing_statement`` was
small, it stayed a sequential scan of every month's statements, run for every line a
refresh deletes and writes, so re-pricing one month grew with the months of history. Now
one query per SQL statement looks up the statements of the rows it changed (its transition
tables), one row at a time by primary key, planned afresh each time (``EXECUTE``) for the
tables as they are. What they refuse is unchanged; a statement that breaks another
constraint as well now fails on that one first (the guards run after the rows are written).
"""

from django.db import migrations

FORWARD = """
DROP TRIGGER billing_statementline_no_insert_into_frozen ON billing_statementline;
DROP TRIGGER billing_statementline_frozen ON billing_statementline;
DROP FUNCTION billing_refuse_line_into_finalized();
DROP FUNCTION billing_refuse_finalized_line();
DROP TRIGGER billing_statementlinejob_frozen ON billing_statementlinejob;
DROP FUNCTION billing_refuse_finalized_line_job();

CREATE FUNCTION billing_refuse_finalized_lines() RETURNS trigger AS $$
DECLARE
    found bigint;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        EXECUTE $q$
            SELECT l.id FROM old_lines l
            WHERE (SELECT status FROM billing_statement WHERE id = l.statement_id) = 'finalized'
            LIMIT 1
        $q$ INTO found;
        IF found IS NULL AND TG_OP = 'UPDATE' THEN
            EXECUTE $q$
                SELECT l.id FROM new_lines l
                WHERE (SELECT status FROM billing_statement WHERE id = l.statement_id)
                    = 'finalized'
                LIMIT 1
            $q$ INTO found;
        END IF;
        IF found IS NOT NULL THEN
            RAISE EXCEPTION 'line % belongs to a finalized statement; it never changes', found
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    ELSE
        EXECUTE $q$
            SELECT l.statement_id FROM new_lines l
            WHERE (SELECT status FROM billing_statement WHERE id = l.statement_id) = 'finalized'
            LIMIT 1
        $q$ INTO found;
        IF found IS NOT NULL THEN
            RAISE EXCEPTION 'statement % is finalized; no line can be added to it', found
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_statementline_no_insert_into_frozen
    AFTER INSERT ON billing_statementline REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse_finalized_lines();
CREATE TRIGGER billing_statementline_frozen
    AFTER UPDATE ON billing_statementline
    REFERENCING OLD TABLE AS old_lines NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse_finalized_lines();
CREATE TRIGGER billing_statementline_frozen_delete
    AFTER DELETE ON billing_statementline REFERENCING OLD TABLE AS old_lines
    FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse_finalized_lines();

CREATE FUNCTION billing_refuse_finalized_line_jobs() RETURNS trigger AS $$
DECLARE
    found bigint;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        EXECUTE $q$
            SELECT j.line_id FROM old_jobs j
            WHERE (
                SELECT s.status FROM billing_statementline l
                JOIN billing_statement s ON s.id = l.statement_id
                WHERE l.id = j.line_id
            ) = 'finalized'
            LIMIT 1
        $q$ INTO found;
    END IF;
    IF found IS NULL AND TG_OP IN ('INSERT', 'UPDATE') THEN
        EXECUTE $q$
            SELECT j.line_id FROM new_jobs j
            WHERE (
                SELECT s.status FROM billing_statementline l
                JOIN billing_statement s ON s.id = l.statement_id
                WHERE l.id = j.line_id
            ) = 'finalized'
            LIMIT 1
        $q$ INTO found;
    END IF;
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'line % belongs to a finalized statement; its jobs never change', found
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_statementlinejob_frozen
    AFTER INSERT ON billing_statementlinejob REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse_finalized_line_jobs();
CREATE TRIGGER billing_statementlinejob_frozen_update
    AFTER UPDATE ON billing_statementlinejob
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse_finalized_line_jobs();
CREATE TRIGGER billing_statementlinejob_frozen_delete
    AFTER DELETE ON billing_statementlinejob REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse_finalized_line_jobs();
"""

# The row-by-row guards of billing/0003 and billing/0009, as they were.
BACKWARD = """
DROP TRIGGER billing_statementlinejob_frozen_delete ON billing_statementlinejob;
DROP TRIGGER billing_statementlinejob_frozen_update ON billing_statementlinejob;
DROP TRIGGER billing_statementlinejob_frozen ON billing_statementlinejob;
DROP FUNCTION billing_refuse_finalized_line_jobs();
DROP TRIGGER billing_statementline_frozen_delete ON billing_statementline;
DROP TRIGGER billing_statementline_frozen ON billing_statementline;
DROP TRIGGER billing_statementline_no_insert_into_frozen ON billing_statementline;
DROP FUNCTION billing_refuse_finalized_lines();

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
    dependencies = [("billing", "0009_freeze_the_jobs_of_finalized_lines")]

    operations = [migrations.RunPython(forward, backward)]
