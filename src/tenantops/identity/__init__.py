"""Client side of tenantops' identity path: get a token with the right audience, call the API.

- `parse_audience` / `Audience`: client ID, ``api://`` URI or ``/.default`` scope, as a
  managed-identity ``resource`` and a client-credentials ``scope``; named scopes are refused.
- `IdentityCredential`: tokens from exactly one identity source (environment, workload
  identity, managed identity in any Azure runtime, Azure CLI, client secret or certificate),
  forced by ``IdentitySettings.source`` or detected in azure-identity's order; no fallback.
- `discover_audience`: the audience an API publishes (its metadata route, or its 401
  ``WWW-Authenticate``), pinned: a server never chooses a Microsoft first-party audience
  (`tenantops.first_party`) nor anything but a client ID or ``api://`` URI;
  `DiscoveryCache` remembers it between commands.
- `require_secure_destination`: a token goes only over https, or plain http to this machine.
- `TokenCache`, `BearerAuth`, `TenantOpsClient`: one token request per token lifetime, shared by
  every thread; 401/403 become `ApiCallRejectedError` with the token beside the expectation.
- `decode_token`, `verify_token`, `describe_expiry`: read a token; verify only when asked.
- `tenantops.identity.doctor`: ``tenantops auth doctor``'s step-by-step diagnosis.
"""

from __future__ import annotations

from tenantops.identity._audience import Audience, parse_audience
from tenantops.identity._cache import TokenCache, refresh_time
from tenantops.identity._challenge import BearerChallenge, ErrorBody, parse_bearer_challenge
from tenantops.identity._client import (
    ApiUnreachableError,
    BearerAuth,
    TenantOpsClient,
    is_loopback,
    require_secure_destination,
)
from tenantops.identity._credential import BearerToken, IdentityCredential, TokenProvider
from tenantops.identity._discovery import (
    DiscoveredAudience,
    discover_audience,
    metadata_url,
    pin_advertised,
)
from tenantops.identity._discovery_cache import DiscoveryCache, api_root_of
from tenantops.identity._rejection import ApiCallRejectedError, Rejection
from tenantops.identity._runtimes import EndpointAnswer, ManagedIdentityRuntime, detect_runtime
from tenantops.identity._selector import IdentitySelector, parse_identity
from tenantops.identity._sources import ImdsProbe, SourceCheck, check_sources, probe_imds
from tenantops.identity._token import DecodedToken, decode_token, describe_expiry, verify_token

__all__ = [
    "ApiCallRejectedError",
    "ApiUnreachableError",
    "Audience",
    "BearerAuth",
    "BearerChallenge",
    "BearerToken",
    "DecodedToken",
    "DiscoveredAudience",
    "DiscoveryCache",
    "EndpointAnswer",
    "ErrorBody",
    "IdentityCredential",
    "IdentitySelector",
    "ImdsProbe",
    "ManagedIdentityRuntime",
    "Rejection",
    "SourceCheck",
    "TenantOpsClient",
    "TokenCache",
    "TokenProvider",
    "api_root_of",
    "check_sources",
    "decode_token",
    "describe_expiry",
    "detect_runtime",
    "discover_audience",
    "is_loopback",
    "metadata_url",
    "parse_audience",
    "parse_bearer_challenge",
    "parse_identity",
    "pin_advertised",
    "probe_imds",
    "refresh_time",
    "require_secure_destination",
    "verify_token",
]
