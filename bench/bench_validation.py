"""Bearer-token validations per second with a warm JWKS, beside two baselines measured in the
same run: the raw RS256 verify rate of ``cryptography`` (the ceiling) and PyJWT's
``decode`` fed by ``PyJWKClient`` (what most services write). Printed as ratios to both; rates
are per second of CPU time, medians of interleaved rounds.

Two tenantops figures, because callers behave two ways:

- *first sight*: every token is new (verified-token memory off), so each validation parses
  the token and verifies its signature;
- *repeated token*: the same token again, as a runbook or CI job presents its managed-identity
  or client-credentials token for its whole lifetime (24 h / 1 h); only the digest lookup,
  key-still-published check and time window are redone.

Run: .venv/bin/python bench/bench_validation.py [--seconds 1.0] [--rounds 5]
Goals: first sight at least 3 x PyJWT + PyJWKClient (issue 19); a repeated token at least 0.8
of the raw verify rate (issue 3).
"""

from __future__ import annotations

import argparse
import base64
import ssl
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tenantops.auth import TokenValidator
from tenantops.config import AuthSettings
from tenantops.emulator.directory import API_CLIENT_ID, default_directory
from tenantops.emulator.server import EmulatorServer

GOAL = 0.8
GOAL_VS_PYJWT = 3.0


def rate(operation: Callable[[int], object], seconds: float) -> float:
    """Calls of ``operation(i)`` per second of this process's CPU time, over about
    ``seconds`` of it (CPU time: on a shared machine, time spent descheduled is not counted)."""
    count, start = 0, time.process_time()
    while True:
        for _ in range(200):
            operation(count)
            count += 1
        elapsed = time.process_time() - start
        if elapsed >= seconds:
            return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="median of this many rounds")
    parser.add_argument("--tokens", type=int, default=400, help="distinct tokens to cycle")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = EmulatorServer(default_directory(), Path(tmp))
        info = server.start()
        try:
            state = server.state
            api = state.directory.app_by_name("tenantops-api")
            identity = state.directory.identity_by_name("aa-onboarding")
            assert api is not None
            assert identity is not None
            tokens = [state.tokens.app_token(api, API_CLIENT_ID, identity).access_token
                      for _ in range(args.tokens)]
            public_key = state.keys.active().private_key.public_key()
            assert isinstance(public_key, rsa.RSAPublicKey)
            settings = AuthSettings(authority=info.authority, tenant_id=info.tenant_id,
                                    client_id=API_CLIENT_ID, ca_bundle=Path(info.ca_bundle))
            first_sight = TokenValidator(settings, verified_cache_size=0)
            repeated = TokenValidator(settings)
            jwks_client = jwt.PyJWKClient(
                f"{info.authority}/{info.tenant_id}/discovery/keys",
                ssl_context=ssl.create_default_context(cafile=info.ca_bundle))
            audiences = [API_CLIENT_ID, f"api://{API_CLIENT_ID}"]
            issuers = [state.tokens.issuer(1), state.tokens.issuer(2)]

            signed = [(t.rpartition(".")[0].encode(),
                       base64.urlsafe_b64decode(t.rpartition(".")[2] + "==")) for t in tokens]

            def raw_verify(i: int) -> None:
                signing_input, signature = signed[i % len(signed)]
                public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())

            def pyjwt(i: int) -> object:
                token = tokens[i % len(tokens)]
                key = jwks_client.get_signing_key_from_jwt(token)
                return jwt.decode(token, key.key, algorithms=["RS256"], audience=audiences,
                                  issuer=issuers)

            def tenantops_first_sight(i: int) -> object:
                return first_sight.validate(tokens[i % len(tokens)])

            def tenantops_repeated(i: int) -> object:
                return repeated.validate(tokens[0])

            measured = {
                "raw RS256 verify (cryptography)": raw_verify,
                "PyJWT decode + PyJWKClient": pyjwt,
                "tenantops, first sight": tenantops_first_sight,
                "tenantops, repeated token": tenantops_repeated,
            }
            for operation in measured.values():
                operation(0)  # warm: JWKS fetched, discovery read, keys parsed
            rates: dict[str, list[float]] = {name: [] for name in measured}
            for _ in range(args.rounds):
                for name, operation in measured.items():
                    rates[name].append(rate(operation, args.seconds))
            first_sight.jwks.close()
            repeated.jwks.close()
        finally:
            server.stop()

    best = {name: statistics.median(values) for name, values in rates.items()}
    raw = best["raw RS256 verify (cryptography)"]
    pyjwt_rate = best["PyJWT decode + PyJWKClient"]
    print(f"RS256 (2048-bit) token validation, warm JWKS, one thread; median of {args.rounds} "
          f"interleaved rounds x {args.seconds:g} s of CPU time")
    print(f"{'':40} {'per CPU s':>12} {'vs raw':>8} {'vs PyJWT':>9}")
    for name, value in best.items():
        print(f"{name:40} {value:12,.0f} {value / raw:8.2f} {value / pyjwt_rate:9.2f}")
    paired = sorted(a / b for a, b in zip(rates["tenantops, first sight"],
                                          rates["PyJWT decode + PyJWKClient"], strict=True))
    first = statistics.median(paired)
    verdict = "meets" if first >= GOAL_VS_PYJWT else "misses"
    print(f"tenantops, first sight: {first:.2f} x PyJWT + PyJWKClient (rounds {paired[0]:.2f} "
          f".. {paired[-1]:.2f}) {verdict} the goal of {GOAL_VS_PYJWT:g} x")
    ratio = best["tenantops, repeated token"] / raw
    verdict = "meets" if ratio >= GOAL else "misses"
    print(f"tenantops, repeated token: {ratio:.2f} of raw verify {verdict} the goal of {GOAL}")

if __name__ == "__main__":
    main()
