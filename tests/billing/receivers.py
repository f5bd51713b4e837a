"""Real receivers for the tests of alert deliveries and statement mails: an HTTP server
on 127.0.0.1 (a thread with http.server) that answers as it is told and keeps what it got,
and an SMTP server (aiosmtpd) that keeps each message or refuses as it is told."""

import contextlib
import email
import email.policy
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    url: str
    answers: list[int]  # the statuses to answer, in order; 200 once they run out
    requests: list[Request] = field(default_factory=list)


@contextlib.contextmanager
def http_receiver(answers: list[int] | None = None) -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(url="", answers=list(answers or []))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            receiver.requests.append(
                Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            status = receiver.answers.pop(0) if receiver.answers else 200
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else b"not now")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/gpu"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: email.message.EmailMessage


class MailHandler:
    """Keeps each message; ``refuse_rcpt``/``refuse_data``: answers to give instead of
    accepting, one per try (e.g. ``["451 4.3.0 Try again later"]``)."""

    def __init__(self):
        self.mails: list[Mail] = []
        self.refuse_rcpt: list[str] = []
        self.refuse_data: list[str] = []
        self.refused: list[str] = []

    async def handle_RCPT(self, server, session, envelope: Envelope, address, rcpt_options):
        if self.refuse_rcpt:
            answer = self.refuse_rcpt.pop(0)
            self.refused.append(answer)
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope: Envelope):
        if self.refuse_data:
            answer = self.refuse_data.pop(0)
            self.refused.append(answer)
            return answer
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(settings) -> Iterator[MailHandler]:
    """A real SMTP server on 127.0.0.1 that the portal's mail goes to for the test."""
    handler = MailHandler()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = port
        settings.EMAIL_USE_TLS = False
        settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = ""
        settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_TIMEOUT = 10
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def tasks_run_at_once():
    """Celery tasks the code under test starts run in the test's process, at once."""
    from portal.celery import app

    saved = {name: app.conf[name] for name in ("task_always_eager", "task_eager_propagates")}
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    try:
        yield
    finally:
        app.conf.update(saved)
