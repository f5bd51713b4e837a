"""What every bench script shares: the repository on ``sys.path``, a log line, a throwaway
PostgreSQL database, and Django set up with the fingerprints of the code being measured.

Import it first (``from common import ...``: the scripts run as ``python bench/<name>.py``,
so ``bench/`` is on the path), then the portal's modules.
"""

import contextlib
import hashlib
import importlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def log(message: str) -> None:
    """A line on stderr stamped with the UTC time (Django sets the process' zone to
    ``TIME_ZONE`` part of the way through a run)."""
    print(f"[{time.strftime('%H:%M:%S', time.gmtime())}Z] {message}", file=sys.stderr, flush=True)


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


@contextlib.contextmanager
def bench_database(url: str, *, reuse: bool, keep: bool, reused_means: str) -> Iterator[str]:
    """:func:`postgres_database` for a bench that measures PostgreSQL only (row locks,
    ``COPY``): any other URL stops the bench with a message."""
    if not urlsplit(url).scheme.startswith("postgres"):
        raise SystemExit("The bench needs PostgreSQL: its figures are PostgreSQL's.")
    with postgres_database(
        url, reuse=reuse, keep=keep, reused_means=reused_means, log=log
    ) as ready:
        yield ready


def setup_django(environment: dict[str, str], measured: Iterable[str]) -> dict[str, str]:
    """Set Django up with ``environment`` added to the process' (``DEBUG`` off unless set)
    and import the ``measured`` modules now, so that every pass runs the same code even if
    the files change while the bench runs. Returns their fingerprints (path: the first 12
    hex digits of the file's SHA-256), which the results print."""
    os.environ.update(environment)
    os.environ.setdefault("DEBUG", "0")
    import django

    django.setup()
    fingerprints = {}
    for name in measured:
        path = Path(importlib.import_module(name).__file__)
        fingerprints[str(path.relative_to(ROOT))] = hashlib.sha256(path.read_bytes()).hexdigest()[
            :12
        ]
    return fingerprints
