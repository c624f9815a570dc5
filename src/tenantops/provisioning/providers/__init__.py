"""Providers: the contract (`base`), one package per kind, and the configured set
(`registry.build_providers`)."""

from __future__ import annotations

from tenantops.provisioning.providers.base import (
    EmbeddedService,
    Middleware,
    Outcome,
    Pending,
    Provider,
    ProviderCall,
    ProviderKind,
    Ready,
    Resource,
    Verb,
)

__all__ = [
    "EmbeddedService",
    "Middleware",
    "Outcome",
    "Pending",
    "Provider",
    "ProviderCall",
    "ProviderKind",
    "Ready",
    "Resource",
    "Verb",
]
