"""Whatever arrives after ``Authorization: Bearer``, the answer is a 401 with a reason
(or, for a real token, the data): never a 500, never someone's data by accident. The
headers and payloads are fuzzed, with the provider's own key ID among the candidates so
that the signature check is reached."""

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _segment(value) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@st.composite
def _tokens(draw, kid: str, issuer: str):
    header = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "alg": st.sampled_from(["RS256", "none", "HS256", "ES256", "PS512"]) | JSON,
                "kid": st.just(kid) | JSON,
                "typ": JSON,
                "crit": JSON,
            },
        )
    )
    claims = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "iss": st.just(issuer) | JSON,
                "aud": st.just(["gpu-portal"]) | JSON,
                "sub": st.text(max_size=300) | JSON,
                "exp": st.integers() | st.floats(allow_nan=True) | JSON,
                "nbf": st.integers() | JSON,
                "groups": st.lists(st.text(max_size=300), max_size=5) | JSON,
            },
        )
    )
    signature = draw(st.binary(max_size=300))
    shape = draw(st.sampled_from(["jwt", "garbage", "segments"]))
    if shape == "garbage":
        return draw(
            st.text(
                alphabet=st.characters(min_codepoint=33, max_codepoint=126),
                min_size=1,
                max_size=200,
            )
        )
    if shape == "segments":
        return ".".join(draw(st.lists(st.text(alphabet="abcXYZ09-_=", max_size=30), max_size=6)))
    return f"{_segment(header)}.{_segment(claims)}.{_segment(signature)}"


def test_no_bearer_token_is_a_server_error_or_lets_anyone_in(oidc, world):
    client = APIClient()
    client.raise_request_exception = False

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(token=_tokens(oidc.key.kid, oidc.url))
    def one(token):
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        response = client.get("/api/v1/departments/")
        assert response.status_code == 401, (token, response.status_code, response.content[:300])
        assert response.json()["detail"]

    one()
