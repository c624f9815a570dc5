"""Python steps: a `CustomStep` class from the entry-point group ``tenantops.steps``, run
in the worker behind the provider contract (`PythonStep`)."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from tenantops.config import CustomStepSettings
from tenantops.errors import ConfigError, PermanentProviderError
from tenantops.provisioning.custom_steps.contract import CustomStep, StepContext, StepResult
from tenantops.provisioning.plans.custom import CustomStepResource
from tenantops.provisioning.providers.base import Outcome, Pending, Provider, Ready, Resource

__all__ = [
    "ENTRY_POINT_GROUP", "PythonStep", "custom_resource", "load_step_class", "step_context",
]

ENTRY_POINT_GROUP = "tenantops.steps"


def load_step_class(name: str, *, setting: str) -> type[CustomStep]:
    """The `CustomStep` subclass registered as ``name`` in ``tenantops.steps``; `ConfigError`
    naming ``setting`` when there is none, it fails to import, or it is not a step."""
    found = entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not found:
        known = sorted({e.name for e in entry_points(group=ENTRY_POINT_GROUP)})
        installed = f"installed: {', '.join(known)}" if known else "none is installed"
        raise ConfigError(
            f"{setting} = {name!r}: no entry point of that name in the group "
            f"{ENTRY_POINT_GROUP} ({installed}); install the package that provides it, or "
            "correct the name")
    entry = next(iter(found))
    try:
        loaded = entry.load()
    except Exception as exc:
        raise ConfigError(
            f"{setting} = {name!r}: entry point {entry.value} fails to import "
            f"({type(exc).__name__}: {exc}); fix or reinstall the package that provides it"
        ) from exc
    if not (isinstance(loaded, type) and issubclass(loaded, CustomStep)):
        raise ConfigError(
            f"{setting} = {name!r}: entry point {entry.value} is not a subclass of "
            "tenantops.provisioning.custom_steps.CustomStep")
    return loaded


def custom_resource(resource: Resource) -> CustomStepResource:
    """``resource`` as the custom step resource the provider base has checked it is."""
    if not isinstance(resource, CustomStepResource):
        raise PermanentProviderError(
            f"a custom step was given a {type(resource).__name__}; check the plan step")
    return resource


def step_context(resource: CustomStepResource, run_id: str | None, attempt: int
                 ) -> StepContext:
    return StepContext(resource.step, resource.run_kind, run_id, attempt,
                       dict(resource.tenant), resource.suspended, dict(resource.outputs))


def _outcome(result: StepResult, label: str) -> Outcome:
    if isinstance(result, (Ready, Pending)):
        return result
    if isinstance(result, Mapping):
        return Ready(dict(result))
    raise PermanentProviderError(
        f"{label} returned {type(result).__name__}; a step returns Ready, Pending or a "
        "mapping of outputs")


class PythonStep(Provider):
    """Runs the custom step ``settings`` declares; the class is loaded on first use."""

    kind = "custom"
    name = "python"
    resource_types = (CustomStepResource,)

    def __init__(self, settings: CustomStepSettings) -> None:
        super().__init__()
        self.settings = settings
        self._step: CustomStep | None = None

    @property
    def label(self) -> str:
        return f"python:{self.settings.name}"

    def _instance(self) -> CustomStep:
        if self._step is None:
            cls = load_step_class(str(self.settings.entry_point),
                                  setting=f"steps.{self.settings.name}.entry_point")
            self._step = cls(dict(self.settings.options))
        return self._step

    def _context(self, resource: Resource) -> StepContext:
        from tenantops.provisioning.engine import current_step

        ref = current_step()
        return step_context(custom_resource(resource), ref.run_id if ref else None,
                            ref.attempt if ref else 0)

    def _ensure(self, resource: Resource) -> Outcome:
        return _outcome(self._instance().ensure(self._context(resource)), self.label)

    def _remove(self, resource: Resource) -> Outcome:
        return _outcome(self._instance().remove(self._context(resource)), self.label)

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        return self._instance().observe(self._context(resource))
