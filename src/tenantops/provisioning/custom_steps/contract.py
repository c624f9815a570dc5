"""The contract of a Python step of your own: a `CustomStep` subclass registered under the
entry-point group ``tenantops.steps``.

    # pyproject.toml of your package
    [project.entry-points."tenantops.steps"]
    billing-customer = "acme_ops.steps:BillingCustomer"

    # tenantops.toml
    [[steps]]
    name = "create_billing_customer"
    type = "python"
    entry_point = "billing-customer"
    after = "create_database"
    options = { plan_prices = "standard" }

It keeps the built-in providers' contract: ``ensure`` creates or converges what the step
makes and returns its outputs; ``remove`` deletes it and succeeds when it is already gone;
``observe`` says what exists (for previews and drift), and changes nothing. Each may return
`Ready` or `Pending` (look again later), or a plain mapping (the outputs). Raise
`TransientProviderError` for a fault worth retrying (a 429, a timeout) and
`PermanentProviderError` for anything else; any other exception is permanent. Outputs are
JSON values and never a secret's value; they are recorded on the step and reach later steps.
The constructor gets the step's ``options`` from the settings and must do no I/O.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tenantops.provisioning.providers.base import Pending, Ready

__all__ = ["CustomStep", "StepContext", "StepResult"]

StepResult = Ready | Pending | Mapping[str, Any]


@dataclass(frozen=True)
class StepContext:
    """What a custom step is run for.

    ``tenant``: the tenant's fields (slug, display_name, custom_domain, plan, admin_email,
    tags) as they are once the run is done; ``suspended``: whether its resources are to be
    suspended; ``outputs``: the outputs of the run's earlier steps, by step name."""

    step: str
    run_kind: str
    run_id: str | None
    attempt: int
    tenant: Mapping[str, Any]
    suspended: bool
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


class CustomStep(ABC):
    """Base class of Python steps (see the module docstring)."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)

    @abstractmethod
    def ensure(self, context: StepContext) -> StepResult:
        """Create or converge what this step makes; its outputs."""

    @abstractmethod
    def remove(self, context: StepContext) -> StepResult:
        """Delete what this step made; succeed when it is already gone."""

    @abstractmethod
    def observe(self, context: StepContext) -> dict[str, Any] | None:
        """What exists now (None: nothing); reads only."""
