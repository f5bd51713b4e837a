# The portal's image: web (gunicorn), Celery beat and workers, and the migrate Job all run
# it (deploy/). Not built by the tests. Build: docker build -t ghcr.io/example/gpu-chargeback-portal:TAG .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STATIC_ROOT=/app/staticfiles \
    PORTAL_VAR_DIR=/var/lib/portal

WORKDIR /app
COPY . .
# Editable, as the README's production steps: the portal finds its templates and static
# files beside its packages in /app.
RUN pip install -e . \
 && DEBUG=0 SECRET_KEY=collectstatic-only-not-used-at-run-time \
    python manage.py collectstatic --noinput \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent portal \
 && mkdir -p /var/lib/portal/media \
 && chown -R portal:portal /var/lib/portal

USER 10001
EXPOSE 8000 9808
CMD ["gunicorn", "portal.wsgi:application", "--bind=0.0.0.0:8000", "--workers=4", "--access-logfile=-"]
