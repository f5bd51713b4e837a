"""How the OpenAPI schema describes the portal's own authentication classes (DRF's token
scheme covers :class:`accounts.authentication.LegacyTokenAuthentication`, a subclass of
DRF's). Loaded by :meth:`accounts.apps.AccountsConfig.ready`."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token (gcp_…, made on Your API tokens or by "
            "POST /api/v1/auth/token/), or an access token of the company's identity "
            "provider.",
        }
