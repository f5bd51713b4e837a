"""A throwaway PostgreSQL database for a benchmark, shared by the bench scripts."""

import contextlib
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit


@contextlib.contextmanager
def postgres_database(
    url: str, *, reuse: bool, keep: bool, reused_means: str, log: Callable[[str], None]
) -> Iterator[str]:
    """The PostgreSQL database at ``url``: created unless it exists and ``reuse`` allows
    that (``reused_means`` says what the bench then empties), dropped at the end unless
    ``keep`` or it was reused."""
    import psycopg2
    from psycopg2 import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            exists = cursor.fetchone() is not None
            if exists and not reuse:
                raise SystemExit(
                    f"Database {name} exists. Drop it (dropdb -h {parts.hostname} -U "
                    f"{parts.username} {name}) or pass --reuse-database, which empties "
                    f"{reused_means}."
                )
            if not exists:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                log(f"created database {name}")
        try:
            yield url
        finally:
            if not exists and not keep:
                with contextlib.suppress(Exception):
                    from django.db import connections

                    connections.close_all()
                with admin.cursor() as cursor:
                    cursor.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(name)
                        )
                    )
                log(f"dropped database {name}")
    finally:
        admin.close()
