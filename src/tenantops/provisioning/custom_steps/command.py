"""Command steps: any executable (a bash or Python script, a PowerShell runbook where
``pwsh`` exists) run as a step, as AWS SaaS Builder Toolkit runs its script jobs.

What the command gets (docs/custom-steps.md lists every name):

- ``TENANTOPS_ACTION``: ``ensure``, ``remove`` (offboarding) or ``observe`` (previews, only
  when the step declares ``observe = true``); ``TENANTOPS_STEP``, ``TENANTOPS_RUN_ID``,
  ``TENANTOPS_RUN_KIND``, ``TENANTOPS_ATTEMPT``;
- the tenant: ``TENANTOPS_TENANT_SLUG``, ``_DISPLAY_NAME``, ``_CUSTOM_DOMAIN``, ``_PLAN``,
  ``_ADMIN_EMAIL``, ``_TAGS`` (a JSON object), ``_SUSPENDED`` (``true``/``false``);
- earlier steps' outputs: ``TENANTOPS_OUTPUT_<STEP>_<KEY>`` (upper case, other characters as
  ``_``; JSON for values that are not strings, numbers or booleans) and all of them as one
  JSON object in ``TENANTOPS_OUTPUTS``;
- the step's ``env`` table, and each variable of its ``secrets`` table set to the value of
  the named secret in the secrets provider. Nothing else of the worker's environment reaches
  it but ``PATH``, ``HOME``, ``LANG``, ``LC_ALL``, ``TZ`` and ``TMPDIR``: the worker's own
  credentials stay with the worker.

What it answers: exit code 0 is success, and the last line of standard output that is a JSON
object becomes the step's outputs (``observe``: a JSON object, or ``null`` for nothing);
exit code 75 (``EX_TEMPFAIL``, sysexits.h) is a transient failure the engine retries with
backoff, as is death by a signal; any other code is a permanent failure that stops the run,
with the output's last lines in the error, until the run is retried. A command still running
after ``timeout_seconds`` has its whole process group killed (SIGTERM, then SIGKILL) and the
attempt is a transient failure. Its output (standard error, and standard output but the
JSON line) is kept on the step, redacted: the values of its secrets and anything that looks
like a credential become ``[redacted]``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tenantops.config import CustomStepSettings
from tenantops.errors import ConfigError, PermanentProviderError, TransientProviderError
from tenantops.log import REDACTED, redact
from tenantops.provisioning.custom_steps.python import custom_resource
from tenantops.provisioning.plans.custom import CustomStepResource
from tenantops.provisioning.providers.base import Outcome, Provider, Ready, Resource
from tenantops.provisioning.providers.secrets import SecretsProvider

__all__ = [
    "EXIT_TRANSIENT",
    "PASSED_THROUGH",
    "CommandStep",
    "command_environment",
    "resolve_executable",
]

EXIT_TRANSIENT = 75
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
_KEPT_OUTPUT = 4000
_KILL_GRACE_SECONDS = 2.0
_NOT_NAME = re.compile(r"[^A-Z0-9]+")


def resolve_executable(command: list[str], working_directory: Path | None, *,
                       setting: str) -> str:
    """The executable ``command[0]`` names: a path (relative to ``working_directory``) or
    a name on ``PATH``; `ConfigError` naming ``setting`` when there is none."""
    if not command:
        raise ConfigError(f"{setting} is empty: give the executable and its arguments, such "
                          'as ["bash", "runbooks/create_billing_customer.sh"]')
    program = command[0]
    if "/" in program:
        path = Path(program)
        if not path.is_absolute():
            path = (working_directory or Path.cwd()) / path
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        why = "is not executable (chmod +x)" if path.is_file() else "does not exist"
        raise ConfigError(f"{setting}[0] = {program!r}: {path} {why}")
    found = shutil.which(program)
    if found is None:
        raise ConfigError(f"{setting}[0] = {program!r}: no such executable on PATH; install "
                          "it or give its path")
    return found


def _env_name(*parts: str) -> str:
    return "_".join(_NOT_NAME.sub("_", part.upper()).strip("_") for part in parts)


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return json.dumps(value, sort_keys=True)


def command_environment(resource: CustomStepResource, action: str, *, run_id: str | None,
                        attempt: int) -> dict[str, str]:
    """The ``TENANTOPS_*`` variables a command step gets for ``resource``."""
    tenant = resource.tenant
    env = {
        "TENANTOPS_ACTION": action,
        "TENANTOPS_STEP": resource.step,
        "TENANTOPS_RUN_ID": run_id or "",
        "TENANTOPS_RUN_KIND": resource.run_kind,
        "TENANTOPS_ATTEMPT": str(attempt),
        "TENANTOPS_TENANT_SUSPENDED": _env_value(resource.suspended),
        "TENANTOPS_TENANT_TAGS": json.dumps(tenant.get("tags") or {}, sort_keys=True),
        "TENANTOPS_OUTPUTS": json.dumps(resource.outputs, sort_keys=True),
    }
    for field in ("slug", "display_name", "custom_domain", "plan", "admin_email"):
        env[_env_name("TENANTOPS_TENANT", field)] = str(tenant.get(field, ""))
    for step, outputs in resource.outputs.items():
        for key, value in outputs.items():
            env[_env_name("TENANTOPS_OUTPUT", step, key)] = _env_value(value)
    return env


class CommandStep(Provider):
    """Runs the command ``settings`` declares (see the module docstring)."""

    kind = "custom"
    name = "command"
    resource_types = (CustomStepResource,)

    def __init__(self, settings: CustomStepSettings, secrets: SecretsProvider) -> None:
        super().__init__()
        self.settings = settings
        self.secrets = secrets

    @property
    def label(self) -> str:
        return f"command:{self.settings.name}"

    def observes(self, resource: Resource) -> bool:
        return self.settings.observe

    def _ensure(self, resource: Resource) -> Outcome:
        outputs, log = self._run("ensure", custom_resource(resource))
        if not isinstance(outputs, dict):
            outputs = {}
        return Ready(outputs, message=log)

    def _remove(self, resource: Resource) -> Outcome:
        outputs, log = self._run("remove", custom_resource(resource))
        return Ready(outputs if isinstance(outputs, dict) else {}, message=log)

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        if not self.settings.observe:
            return None
        found, _log = self._run("observe", custom_resource(resource))
        return found

    # -- running ------------------------------------------------------------------------

    def _secret_values(self) -> dict[str, str]:
        return {variable: self.secrets.read(name)
                for variable, name in self.settings.secrets.items()}

    def _environment(self, resource: CustomStepResource, action: str,
                     secrets: Mapping[str, str]) -> dict[str, str]:
        from tenantops.provisioning.engine import current_step

        ref = current_step()
        env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
        env.update(self.settings.env)
        env.update(command_environment(resource, action, run_id=ref.run_id if ref else None,
                                       attempt=ref.attempt if ref else 0))
        env.update(secrets)
        return env

    def _run(self, action: str, resource: CustomStepResource
             ) -> tuple[dict[str, Any] | None, str]:
        settings = self.settings
        where = settings.working_directory
        executable = resolve_executable(list(settings.command), where,
                                        setting=f"steps.{settings.name}.command")
        secrets = self._secret_values()
        try:
            process = subprocess.Popen(
                [executable, *settings.command[1:]], env=self._environment(
                    resource, action, secrets),
                cwd=where, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise PermanentProviderError(
                f"{self.label}: could not start {executable}: {exc.strerror}") from None
        try:
            stdout, stderr = process.communicate(timeout=settings.timeout_seconds)
        except subprocess.TimeoutExpired:
            stdout, stderr = self._kill(process)
            log = self._log(stdout, stderr, secrets)
            raise TransientProviderError(
                f"{self.label} ({action}) did not finish within {settings.timeout_seconds:g} s "
                f"and its process group was killed; output: {_tail(log)}") from None
        answer, log = self._answer(stdout, stderr, secrets)
        code = process.returncode
        if code == 0:
            self._check_outputs(answer, secrets)
            return answer, log
        if code < 0 or code == EXIT_TRANSIENT:
            how = (f"was killed by signal {-code}" if code < 0
                   else f"exited {code} (transient)")
            raise TransientProviderError(f"{self.label} ({action}) {how}; output: {_tail(log)}")
        raise PermanentProviderError(
            f"{self.label} ({action}) exited {code}; output: {_tail(log)}. Fix the cause, "
            "then retry the run")

    def _kill(self, process: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                return process.communicate(timeout=_KILL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                continue
        # A descendant that left the group may still hold the pipes: stop reading them.
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        process.wait()
        return b"", b""

    def _answer(self, stdout: bytes, stderr: bytes, secrets: Mapping[str, str]
                ) -> tuple[dict[str, Any] | None, str]:
        lines = stdout.decode(errors="replace").splitlines()
        answer: dict[str, Any] | None = None
        answer_line: int | None = None
        for index in range(len(lines) - 1, -1, -1):
            text = lines[index].strip()
            if not text:
                continue
            try:
                parsed = json.loads(text)
            except ValueError:
                continue
            if isinstance(parsed, dict) or parsed is None:
                answer, answer_line = parsed, index
                break
        rest = [line for i, line in enumerate(lines) if i != answer_line]
        return answer, self._log("\n".join(rest).encode(), stderr, secrets)

    def _log(self, stdout: bytes, stderr: bytes, secrets: Mapping[str, str]) -> str:
        text = "\n".join(part for part in (stdout.decode(errors="replace").strip(),
                                           stderr.decode(errors="replace").strip()) if part)
        for value in sorted(secrets.values(), key=len, reverse=True):
            if value:
                text = text.replace(value, REDACTED)
        text = redact(text)
        return text[-_KEPT_OUTPUT:]

    def _check_outputs(self, answer: dict[str, Any] | None,
                       secrets: Mapping[str, str]) -> None:
        if answer is None:
            return
        dumped = json.dumps(answer)
        for variable, value in secrets.items():
            if value and value in dumped:
                raise PermanentProviderError(
                    f"{self.label} put the value of its secret {variable} in its outputs; "
                    "outputs are recorded and passed on, so they must never hold a secret")


def _tail(log: str, lines: int = 8) -> str:
    shown = log.strip().splitlines()[-lines:]
    return " | ".join(shown) if shown else "(none)"
