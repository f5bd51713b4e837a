"""Rate limits on signing in and on submitting jobs.

The counters are django-ratelimit's: fixed windows in the default cache (``CACHE_URL``),
counted with an atomic add and increment, so web processes sharing one Redis never let
more through than the rate. Pages and the API count on the same counters: job submissions
per user (the form and ``POST /api/v1/jobs/`` together), sign-in attempts per username and
per client address (the portal's form, the admin's and the API token endpoint together),
so moving from one door to another gains nothing. Pages answer 429 with a message; the API
answers through DRF's throttles, 429 with ``Retry-After`` and a JSON ``detail``.
"""

import functools
import re

from django.conf import settings
from django.contrib import messages
from django_ratelimit.core import get_usage
from rest_framework.exceptions import Throttled
from rest_framework.throttling import BaseThrottle

LOGIN_REFUSED = "Too many sign-in attempts for this username or from this address."
_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}


def rate_text(rate: str) -> str:
    """A rate as people read it: ``60/m`` is "60 per minute", ``10/5m`` "10 per 5 minutes"."""
    count, multiple, unit = re.fullmatch(r"(\d+)/(\d*)([smhd])", rate).groups()
    if multiple and multiple != "1":
        return f"{count} per {multiple} {_UNITS[unit]}s"
    return f"{count} per {_UNITS[unit]}"


def _seconds(wait_s: int) -> str:
    return f"{wait_s} second{'' if wait_s == 1 else 's'}"


def _wait_s(usage: dict | None) -> int | None:
    """Seconds until the window of a counter over its rate ends; None under the rate."""
    if usage is None or not usage["should_limit"]:
        return None
    return max(usage["time_left"], 1)


def client_address(request) -> str:
    """The client's address (``RATELIMIT_IP_META_KEY``, else ``REMOTE_ADDR``), or "" for a
    request that carries none (a unix socket behind some servers)."""
    meta_key = getattr(settings, "RATELIMIT_IP_META_KEY", None) or "REMOTE_ADDR"
    return str(request.META.get(meta_key) or "").split(",")[0].strip()


def _client_address(group, request) -> str:
    """The rate limits' key: requests without an address share one counter rather than
    failing."""
    return client_address(request) or "unknown-address"


def login_attempt(request, username: str) -> int | None:
    """Count one sign-in attempt against ``username`` and against the client's address
    (every attempt counts, right or wrong: the count is atomic where checking the password
    first would let a burst of parallel guesses through). Returns the seconds to wait when
    either is over its rate (``RATELIMIT_LOGIN``, ``RATELIMIT_LOGIN_IP``), else None."""
    username = str(username).strip().casefold()
    usages = [
        get_usage(
            request,
            group="portal.login.username",
            key=lambda group, request: username,
            rate=settings.RATELIMIT_LOGIN,
            increment=True,
        ),
        get_usage(
            request,
            group="portal.login.ip",
            key=_client_address,
            rate=settings.RATELIMIT_LOGIN_IP,
            increment=True,
        ),
    ]
    return max((w for w in map(_wait_s, usages) if w is not None), default=None)


def job_submission(request) -> int | None:
    """Count one job submission of the signed-in user; returns the seconds to wait when
    it is over ``JOBS_SUBMIT_RATE``, else None."""
    usage = get_usage(
        request, group="jobs.submit", key="user", rate=settings.JOBS_SUBMIT_RATE, increment=True
    )
    return _wait_s(usage)


def job_submission_refused(wait_s: int | None = None) -> str:
    text = f"You have submitted too many jobs: at most {rate_text(settings.JOBS_SUBMIT_RATE)}."
    return text if wait_s is None else f"{text} Try again in {_seconds(wait_s)}."


def login_rate_limited(view):
    """``view``, a sign-in page, with each POST counted by :func:`login_attempt`. Over the
    rate it answers 429 with its form again, empty, and the reason as a message; the
    password is not tried."""

    @functools.wraps(view)
    def limited_view(request, *args, **kwargs):
        if request.method == "POST":
            wait_s = login_attempt(request, request.POST.get("username", ""))
            if wait_s is not None:
                messages.error(request, f"{LOGIN_REFUSED} Try again in {_seconds(wait_s)}.")
                # Shown as to a GET, the form stays unbound: nothing is authenticated.
                request.method = "GET"
                response = view(request, *args, **kwargs)
                if response.status_code == 200:
                    response.status_code = 429
                    response["Retry-After"] = str(wait_s)
                return response
        return view(request, *args, **kwargs)

    return limited_view


class LoginThrottle(BaseThrottle):
    """Sign-in attempts on the API token endpoint, counted with the sign-in pages'."""

    def allow_request(self, request, view) -> bool:
        if request.method != "POST":
            return True
        data = request.data
        wait_s = login_attempt(request, data.get("username", "") if hasattr(data, "get") else "")
        if wait_s is not None:
            # Raised here rather than returning False, to say what was limited.
            raise Throttled(wait=wait_s, detail=LOGIN_REFUSED)
        return True


class JobSubmitThrottle(BaseThrottle):
    """Job submissions through the API, counted with the submit form's."""

    def allow_request(self, request, view) -> bool:
        wait_s = job_submission(request)
        if wait_s is not None:
            raise Throttled(wait=wait_s, detail=job_submission_refused())
        return True
