"""No token, nor any part of one, appears in logs or in responses, accepted or refused."""

from __future__ import annotations

import logging
import re
import time

import pytest

from tenantops.emulator.server import EmulatorServer
from tests.auth.support import (
    API_CLIENT_ID,
    ARM,
    Api,
    Forge,
    api_for,
    mi_token,
    settings_for,
)

JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


@pytest.fixture
def auth_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    """Captures tenantops' records even when configure_logging stopped their propagation."""
    monkeypatch.setattr(logging.getLogger("tenantops"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="tenantops")
    return caplog


def test_tokens_appear_in_neither_logs_nor_responses(
    emulator_server: EmulatorServer, auth_log: pytest.LogCaptureFixture
) -> None:
    forge = Forge(emulator_server)
    good = mi_token(emulator_server, "aa-onboarding", API_CLIENT_ID)
    head, payload, signature = good.split(".")
    tokens = {
        "accepted": good,
        "wrong-audience": mi_token(emulator_server, "aa-onboarding", ARM),
        "no-role": mi_token(emulator_server, "uami-no-role", API_CLIENT_ID),
        "expired": forge.token(exp=int(time.time()) - 3600),
        "tampered": f"{head}.{payload}x.{signature}",
        "bad-signature": f"{head}.{payload}.{signature[:-4]}AAAA",
    }
    app = api_for(settings_for(emulator_server.info))
    api = Api(app)

    responses = {name: api.bearer(token, "/api/_probe/write") for name, token in tokens.items()}
    app.state.authenticator.validator.jwks.close()

    assert responses["accepted"].status_code == 200
    assert {r.status_code for n, r in responses.items() if n != "accepted"} <= {401, 403}
    assert auth_log.text.count("request refused") == len(tokens) - 1
    exposed = auth_log.text + "".join(
        r.text + str(r.headers) for r in responses.values())
    for name, token in tokens.items():
        for part in token.split("."):
            assert part not in exposed, f"part of the {name} token was exposed"
    assert JWT_SHAPE.search(exposed) is None
