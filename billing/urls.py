"""Billing pages (the HTML side; the API and the exports live in billing.api)."""

from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("statements/", views.statement_list, name="statements"),
    path("statements/<int:pk>/", views.statement_detail, name="statement"),
    path("statements/<int:pk>/finalize/", views.statement_finalize, name="finalize"),
    path(
        "statements/<int:pk>/lines/<int:line_pk>/jobs/",
        views.statement_line_jobs,
        name="line_jobs",
    ),
]
