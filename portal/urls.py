import functools

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from accounts import api as accounts_api
from accounts import oidc as accounts_oidc
from accounts import views as accounts_views
from billing import api as billing_api
from billing import notifications_api, notifications_views
from cluster import api as cluster_api
from core import ratelimits
from departments import api as departments_api
from jobs import api as jobs_api
from metering import api as metering_api
from portal import metrics, views

router = DefaultRouter()
router.register("departments", departments_api.DepartmentViewSet, basename="departments")
router.register("role-mappings", accounts_api.RoleMappingViewSet, basename="role-mappings")
router.register("tokens", accounts_api.ApiTokenViewSet, basename="tokens")
router.register("gpu-classes", departments_api.GpuClassViewSet, basename="gpu-classes")
router.register("clusters", departments_api.ClusterViewSet, basename="clusters")
router.register("worker-pools", departments_api.WorkerPoolViewSet, basename="worker-pools")
router.register("quotas", departments_api.QuotaViewSet, basename="quotas")
router.register("service-levels", departments_api.ServiceLevelViewSet, basename="service-levels")
router.register(
    "off-peak-windows", departments_api.OffPeakWindowViewSet, basename="off-peak-windows"
)
router.register("job-kinds", jobs_api.JobKindViewSet, basename="job-kinds")
router.register("jobs", jobs_api.JobViewSet, basename="jobs")
router.register("usage", metering_api.UsageViewSet, basename="usage")
router.register("rate-cards", billing_api.RateCardViewSet, basename="rate-cards")
router.register("statements", billing_api.StatementViewSet, basename="statements")
router.register("adjustments", billing_api.AdjustmentViewSet, basename="adjustments")
router.register("alert-channels", notifications_api.AlertChannelViewSet, basename="alert-channels")
router.register("alert-deliveries", notifications_api.DeliveryViewSet, basename="alert-deliveries")

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path(
        "accounts/login/",
        ratelimits.login_rate_limited(accounts_views.LoginView.as_view()),
        name="login",
    ),
    path("accounts/logout/", accounts_views.logout_view, name="logout"),
    path(
        "accounts/tokens/",
        include(
            (
                [
                    path("", accounts_views.api_tokens, name="tokens"),
                    path("<int:pk>/revoke/", accounts_views.api_token_revoke, name="token_revoke"),
                ],
                "accounts",
            ),
        ),
    ),
    # Sign-in at the company's identity provider (accounts/oidc.py): where it starts, and
    # where the provider sends the browser back.
    path(
        "oidc/authenticate/",
        accounts_oidc.AuthenticationRequestView.as_view(),
        name="oidc_authentication_init",
    ),
    path(
        "oidc/callback/",
        accounts_oidc.CallbackView.as_view(),
        name="oidc_authentication_callback",
    ),
    # The department page shows metered usage too, so it lives here, above both apps.
    path(
        "departments/",
        include(
            (
                [
                    path("<slug:slug>/", views.department_detail, name="detail"),
                    path("<slug:slug>/alerts/", notifications_views.alert_channels, name="alerts"),
                    path(
                        "<slug:slug>/alerts/<int:pk>/",
                        notifications_views.alert_channel_change,
                        name="alert_channel",
                    ),
                ],
                "departments",
            ),
        ),
    ),
    path("jobs/", include("jobs.urls")),
    path("billing/", include("billing.urls")),
    # Ahead of the admin's own, so that its sign-in is rate limited as the portal's is.
    path(
        "admin/login/",
        ratelimits.login_rate_limited(
            functools.partial(accounts_views.admin_login, admin_site_login=admin.site.login)
        ),
    ),
    path("admin/", admin.site.urls),
    path("api/v1/auth/token/", accounts_api.ObtainTokenView.as_view(), name="api-token"),
    path(
        "api/v1/reports/chargeback/",
        billing_api.ChargebackReportView.as_view(),
        name="chargeback-report",
    ),
    path("api/v1/forecast/", billing_api.ForecastView.as_view(), name="forecast"),
    path(
        "api/v1/reports/pools/",
        billing_api.PoolReportView.as_view(),
        name="pool-report",
    ),
    path("api/v1/exports/focus/", billing_api.FocusExportView.as_view(), name="focus-export"),
    path(
        "api/v1/cluster/manifests/",
        cluster_api.ManifestsView.as_view(),
        name="cluster-manifests",
    ),
    path("api/v1/cluster/drift/", cluster_api.DriftView.as_view(), name="cluster-drift"),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        login_required(SpectacularSwaggerView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
]

handler400 = "portal.views.bad_request"
handler403 = "portal.views.permission_denied"
handler404 = "portal.views.not_found"
handler500 = "portal.views.server_error"
