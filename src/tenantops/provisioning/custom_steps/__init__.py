"""Steps of your own, run by the engine beside the built-in ones and behind the same
provider contract (``ensure``/``remove``/``observe``, transient vs permanent errors,
outputs): Python classes from the entry-point group ``tenantops.steps`` (`CustomStep`,
`PythonStep`) and commands of any language (`CommandStep`). They are declared in the
settings (``[[steps]]``), checked when the settings load (`check_custom_steps`), and placed
in each plan by `tenantops.provisioning.plans.custom`."""

from __future__ import annotations

from tenantops.provisioning.custom_steps.checks import (
    BUILTIN_STEP_NAMES,
    check_custom_steps,
    declared,
)
from tenantops.provisioning.custom_steps.command import (
    EXIT_TRANSIENT,
    PASSED_THROUGH,
    CommandStep,
    command_environment,
)
from tenantops.provisioning.custom_steps.contract import CustomStep, StepContext, StepResult
from tenantops.provisioning.custom_steps.python import (
    ENTRY_POINT_GROUP,
    PythonStep,
    load_step_class,
)

__all__ = [
    "BUILTIN_STEP_NAMES",
    "ENTRY_POINT_GROUP",
    "EXIT_TRANSIENT",
    "PASSED_THROUGH",
    "CommandStep",
    "CustomStep",
    "PythonStep",
    "StepContext",
    "StepResult",
    "check_custom_steps",
    "command_environment",
    "declared",
    "load_step_class",
]
