"""The checks the ``[[steps]]`` settings must pass when they load: each refusal names the
setting (``steps[1].after``), the value and the rule."""

from __future__ import annotations

import re
from collections.abc import Sequence

from tenantops.config import CustomStepSettings
from tenantops.errors import ConfigError
from tenantops.provisioning.custom_steps.command import resolve_executable
from tenantops.provisioning.custom_steps.python import load_step_class
from tenantops.provisioning.plans.custom import Declared, onboarding_order

__all__ = ["BUILTIN_STEP_NAMES", "check_custom_steps", "declared"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

BUILTIN_STEP_NAMES = frozenset({
    "register_tenant", "store_database_secret", "create_database", "create_cname_record",
    "create_verification_record", "wait_for_dns", "wait_for_customer_dns", "bind_hostname",
    "issue_certificate", "bind_certificate", "create_organization", "invite_admin",
    "activate_tenant", "deactivate_tenant", "remove_organization", "unbind_certificate",
    "delete_certificate", "unbind_hostname", "delete_verification_record",
    "delete_cname_record", "drop_database", "delete_database_secret", "deregister_tenant",
    "remove_previous_admin", "wait_for_grace_period", "drop_previous_organization_domains",
    "release_previous_domains", "suspend_hostname", "resume_hostname",
    "disable_organization", "enable_organization", "disable_database_login",
    "enable_database_login",
})
"""Step names of the built-in plans, which a custom step may not take."""


def declared(steps: Sequence[CustomStepSettings]) -> tuple[Declared, ...]:
    """The custom steps as a run's options record them."""
    return tuple(Declared(s.name, s.before, s.after, s.description, tuple(s.runs_in))
                 for s in steps)


def check_custom_steps(steps: Sequence[CustomStepSettings]) -> None:
    """`ConfigError` naming the first setting that is wrong: a duplicate or built-in name,
    both or neither of before/after, an anchor that names no step, a cycle, a missing or
    non-executable command, an entry point that is missing or fails to import, an
    environment variable name that is invalid or reserved."""
    seen: dict[str, int] = {}
    for index, step in enumerate(steps):
        where = f"steps[{index}]"
        if step.name in seen:
            raise ConfigError(f"{where}.name = {step.name!r}: steps[{seen[step.name]}] has "
                              "that name already; each step needs its own")
        if step.name in BUILTIN_STEP_NAMES or step.name in {f"remove_{s.name}" for s in steps}:
            raise ConfigError(f"{where}.name = {step.name!r}: a built-in step, or another "
                              "custom step's offboarding step, has that name; choose another")
        seen[step.name] = index
        if bool(step.before) == bool(step.after):
            raise ConfigError(f"{where} ({step.name}): set exactly one of before and after")
        for table in ("env", "secrets"):
            for variable in getattr(step, table):
                if not _ENV_NAME.fullmatch(variable) or variable.upper().startswith(
                        "TENANTOPS_"):
                    raise ConfigError(
                        f"{where}.{table}: {variable!r} must be an environment variable name "
                        "(letters, digits, '_') not starting with TENANTOPS_ (reserved)")
        clash = set(step.env) & set(step.secrets)
        if clash:
            raise ConfigError(f"{where}: {', '.join(sorted(clash))} is in both env and "
                              "secrets; keep a secret in secrets only")
        if step.type == "command":
            if step.entry_point:
                raise ConfigError(f"{where}.entry_point: a command step runs its command; "
                                  "remove entry_point or set type = \"python\"")
            resolve_executable(list(step.command), step.working_directory,
                               setting=f"{where}.command")
        else:
            if step.command:
                raise ConfigError(f"{where}.command: a python step runs its entry point; "
                                  "remove command or set type = \"command\"")
            if not step.entry_point:
                raise ConfigError(f"{where}.entry_point is not set: name the entry point "
                                  "(group tenantops.steps) whose class runs this step")
            load_step_class(step.entry_point, setting=f"{where}.entry_point")
    onboarding_order(declared(steps))
