"""Pages of jobs (the HTML side; the API is in jobs.api)."""

from django.urls import path  # noqa: F401

app_name = "jobs"

urlpatterns: list = []
