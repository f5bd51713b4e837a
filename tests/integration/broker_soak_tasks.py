"""The task of the embedded broker's soak test (tests/integration/test_embedded_broker_soak.py):
a worker started with ``-I tests.integration.broker_soak_tasks`` records each message it
runs, with whether its body arrived whole."""

import hashlib
import os

from celery import shared_task


@shared_task(name="soak.record", acks_late=True)
def record(seq: int, body: str, digest: str) -> None:
    """Append ``seq`` and whether ``body`` matches ``digest`` to SOAK_RECORD_PATH: one
    ``write`` of one short line to a file opened for appending, so lines never mix."""
    whole = hashlib.sha256(body.encode()).hexdigest() == digest
    line = f"{seq} {'whole' if whole else 'torn'} {os.getpid()}\n".encode()
    descriptor = os.open(os.environ["SOAK_RECORD_PATH"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)
