"""gunicorn's configuration for the portal's web server:
``gunicorn -c portal/gunicorn.conf.py portal.wsgi:application --workers 4 …``.

It makes ``/metrics`` right with several worker processes. Each worker records its
requests in ``portal_http_request_duration_seconds`` in files under one directory
(prometheus-client's multiprocess mode), and whichever worker answers a scrape sums them
all. The directory is ``WEB_PROMETHEUS_MULTIPROC_DIR``, by default
``$PORTAL_VAR_DIR/prometheus-multiproc/web``: the web's own, apart from the Celery
workers' (``var/prometheus-multiproc/<port>``), even where ``PROMETHEUS_MULTIPROC_DIR``
is exported for those, since this file sets it for the web's processes. It is emptied when
gunicorn starts; a worker that exits is marked dead.

Only the standard library here: it runs in gunicorn's master, before Django.
"""

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
_VAR_DIR = Path(os.environ.get("PORTAL_VAR_DIR") or _ROOT / "var")
_MULTIPROC_DIR = Path(
    os.environ.get("WEB_PROMETHEUS_MULTIPROC_DIR") or _VAR_DIR / "prometheus-multiproc" / "web"
)
# Before any worker imports prometheus_client (it chooses its mode at import), and
# inherited by every worker gunicorn forks.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_MULTIPROC_DIR)


def on_starting(server):
    """Start from no samples: the files of an earlier run would add its requests again
    (only the metric files, never anything else someone put there)."""
    _MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
    for stale in _MULTIPROC_DIR.glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    """A worker exited: its live gauges go (its histogram samples stay in the sum)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
