"""The embedded mode's Celery broker: kombu's SQLAlchemy transport over one SQLite file.

``make demo`` used kombu's filesystem transport, one file per message. A consumer could read
a file before its writer had finished it (celery/kombu#1551): the worker then died on an
empty message. Here a message is a row: it is written in one SQLite transaction and taken in
another (kombu takes it under ``BEGIN IMMEDIATE``, so two consumers never take the same
row), and a reader sees all of a message or none of it. It needs nothing but SQLAlchemy, a
pip dependency, and SQLite, which Python has. Redis would be faster but is one more server
to install and keep running; RabbitMQ more so.

The broker URL is SQLAlchemy's URL of the file, ``sqlite:////abs/path/broker.sqlite3``:
importing this module registers the ``sqlite`` scheme with kombu (settings import it, so
every portal process has it). The :class:`Transport` is kombu's with two changes: each
connection is opened by :func:`connector` (WAL mode, a long busy timeout, the folder made
when missing), and consumers look again after ``POLLING_INTERVAL_S`` instead of kombu's
1 s. Both could not go through transport options: kombu hands every option it does not
know to ``create_engine``, which refuses ``polling_interval``.

What it does not do, and the embedded mode does not need: broadcast (``celery inspect`` and
``celery control`` get no answer), priorities (messages are served in the order sent), and
more than one machine. kombu keeps a taken message's row (``visible = 0``); run_demo calls
:func:`purge_taken` to delete them. Production uses Redis or RabbitMQ (README).
"""

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqlalchemy
from sqlalchemy import create_engine

SCHEME = "sqlite:///"
# How long a writer waits for another to finish before it gives up (SQLite's busy timeout).
BUSY_TIMEOUT_S = 60
# How long a consumer waits before it looks again when it took nothing: also when it holds
# as many messages as it may (a worker takes one per free process), so this bounds how soon
# a freed process gets its next message: kombu's 1 s caps a worker of two processes at
# about two short tasks a second. Each look is a transaction per queue: the demo's worker,
# on 13 queues, spends 2-3 % of a core idle at 0.5 s (6 % at 0.2 s, 16 % at 0.05 s).
POLLING_INTERVAL_S = 0.5


def sqlite_url(path: Path) -> str:
    """The broker URL of the SQLite file ``path``."""
    return f"{SCHEME}{Path(path).resolve()}"


def sqlite_path(url: str) -> Path | None:
    """The file of an embedded broker URL; ``None`` for any other broker."""
    if not url.startswith(SCHEME) or url == SCHEME:
        return None
    return Path(url.removeprefix(SCHEME).split("?", 1)[0])


def connector(path: Path) -> Callable[[], sqlite3.Connection]:
    """What SQLAlchemy calls for each new connection to the broker's file: the folder is
    made when missing, a writer waits up to ``BUSY_TIMEOUT_S`` for another, and the file is
    in WAL mode, where readers do not block the writer and a commit is one append."""
    path = Path(path)

    def connect() -> sqlite3.Connection:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    return connect


class Channel(kombu_sqlalchemy.Channel):
    def _engine_from_config(self):
        url = self.connection.client.hostname
        path = sqlite_path(url)
        if path is None:
            raise ValueError(f"Not an embedded broker URL (want {SCHEME}/path/to/file): {url}")
        return create_engine(url, creator=connector(path))


class Transport(kombu_sqlalchemy.Transport):
    Channel = Channel
    polling_interval = POLLING_INTERVAL_S


TRANSPORT_ALIASES.setdefault("sqlite", f"{__name__}:Transport")


def purge_taken(url: str) -> int:
    """Delete the rows of messages a consumer has taken (kombu marks them ``visible = 0``
    and never deletes them); returns how many. A taken message is in its consumer's hands:
    its row is not needed to run, acknowledge or give back the message."""
    path = sqlite_path(url)
    if path is None or not path.exists():
        return 0
    with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)) as connection, connection:
        exists = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kombu_message'"
        ).fetchone()
        if not exists:
            return 0
        return connection.execute("DELETE FROM kombu_message WHERE visible = 0").rowcount
