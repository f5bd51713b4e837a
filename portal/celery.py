"""The Celery application: every worker, beat and producer uses this one.

Configuration comes from Django settings under the ``CELERY_`` prefix, so the broker is
chosen by the ``CELERY_BROKER_URL`` environment variable (one SQLite file under ``var/`` by
default, portal/broker.py; Redis or RabbitMQ in production).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
