"""The one exception handler: allow-list refusals become 403 insufficient_scope, an
unreachable authority a 503 with Retry-After (the caller is not at fault), never a 500."""

from __future__ import annotations

import time
import uuid

from cryptography.hazmat.primitives.asymmetric import rsa

from tenantops.api import create_app
from tenantops.auth import Authenticator, JwksCache, TokenValidator
from tenantops.config import Settings
from tenantops.emulator.server import EmulatorServer
from tests.auth.support import (
    API_CLIENT_ID,
    Api,
    FakeEntra,
    mi_token,
    parse_challenge,
    settings_for,
)


def test_application_outside_allowed_applications_gets_403_naming_it(
    emulator_server: EmulatorServer,
) -> None:
    allowed = "0f0f0f0f-0000-4000-8000-000000000000"
    app = create_app(settings_for(emulator_server.info, allowed_applications=[allowed]))
    identity = emulator_server.state.directory.identity_by_name("aa-onboarding")
    assert identity is not None

    response = Api(app).bearer(mi_token(emulator_server, "aa-onboarding", API_CLIENT_ID))
    app.state.authenticator.validator.jwks.close()

    assert response.status_code == 403
    assert parse_challenge(response.headers["www-authenticate"])["error"] == "insufficient_scope"
    assert response.json()["expected"] == {"appid": [allowed]}
    assert response.json()["received"] == {"appid": identity.client_id}


def test_unreachable_authority_gives_503_with_retry_after() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    entra = FakeEntra(str(uuid.uuid4()), {"key-1": key})
    entra.status = 502
    settings = Settings(auth=entra.settings())
    jwks = JwksCache.from_settings(settings.auth, transport=entra.transport)
    validator = TokenValidator(settings.auth, jwks=jwks)
    app = create_app(settings, authenticator=Authenticator(settings.auth, validator=validator))

    response = Api(app).bearer(entra.sign(entra.claims(time.time()), "key-1"))

    assert response.status_code == 503
    assert "www-authenticate" not in response.headers
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"] == "temporarily_unavailable"
    assert "answered HTTP 502" in response.json()["error_description"]
