"""Settings of the portal as ``bench/admission.py`` serves it: the portal's own, with a
URL configuration that adds the baseline endpoint. Bench only; never deployed."""

from portal.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
