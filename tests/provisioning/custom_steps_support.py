"""What the custom step tests install: a Python step package registered under the entry-point
group ``tenantops.steps`` (a ``.dist-info`` folder put on ``sys.path``, as an installed
distribution is), and a command step written the way the repository's runbooks are."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

__all__ = ["COMMAND_STEP", "install_step_package", "write_command"]

STEP_MODULE = '''
"""Steps a tenant's platform team might write: a record per tenant in a folder."""

from __future__ import annotations

import json
from pathlib import Path

from tenantops.errors import PermanentProviderError
from tenantops.provisioning.custom_steps import CustomStep, StepContext
from tenantops.provisioning.providers.base import Ready


class SeedRecords(CustomStep):
    """Writes <folder>/<slug>.json with the tenant and the database an earlier step made."""

    def _path(self, context: StepContext) -> Path:
        return Path(self.options["folder"]) / f"{context.tenant['slug']}.json"

    def ensure(self, context: StepContext) -> Ready:
        gate = self.options.get("fail_unless")
        if gate and not Path(gate).exists():
            raise PermanentProviderError(f"the seed source {gate} is missing")
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"tenant": context.tenant["slug"], "kind": context.run_kind,
                  "database": context.outputs.get("create_database", {}).get("database"),
                  "suspended": context.suspended}
        changed = not path.exists() or json.loads(path.read_text()) != record
        path.write_text(json.dumps(record))
        with open(Path(self.options["folder"]) / "calls.log", "a") as log:
            log.write(f"ensure {context.tenant['slug']} {context.run_id} {context.attempt}\\n")
        return Ready({"seeded": str(path)}, changed=changed)

    def remove(self, context: StepContext) -> Ready:
        path = self._path(context)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return Ready({}, changed=existed)

    def observe(self, context: StepContext) -> dict[str, object] | None:
        path = self._path(context)
        return json.loads(path.read_text()) if path.exists() else None


class Broken(CustomStep):
    def ensure(self, context: StepContext) -> Ready:
        return Ready()

    def remove(self, context: StepContext) -> Ready:
        return Ready()

    def observe(self, context: StepContext) -> None:
        return None


class NotAStep:
    pass
'''

COMMAND_STEP = textwrap.dedent('''\
    #!/usr/bin/env bash
    # create_billing_customer: the billing system's customer for a tenant, in the style of
    # the repository's runbooks: inputs from the environment, one JSON line of outputs.
    set -euo pipefail
    state="${BILLING_STATE:?BILLING_STATE is not set}"
    slug="$TENANTOPS_TENANT_SLUG"
    env > "$state/env-$TENANTOPS_ACTION-$slug"
    echo "using key $BILLING_API_KEY (password=$BILLING_API_KEY)" >&2
    if [ -f "$state/exit-code" ]; then
        code=$(cat "$state/exit-code")
        if [ -f "$state/fail-count" ]; then
            left=$(cat "$state/fail-count")
            if [ "$left" -le 0 ]; then code=0; else echo $((left - 1)) > "$state/fail-count"; fi
        fi
        if [ "$code" != 0 ]; then echo "billing refused $slug" >&2; exit "$code"; fi
    fi
    if [ -f "$state/hang" ]; then
        sleep 1000 &
        echo $! > "$state/child.pid"
        wait
    fi
    case "$TENANTOPS_ACTION" in
      ensure)
        echo "creating customer for $TENANTOPS_TENANT_DISPLAY_NAME"
        echo "cus_$slug" > "$state/customer-$slug"
        printf '{"customer_id": "cus_%s", "database": "%s"}\\n' "$slug" \\
            "${TENANTOPS_OUTPUT_CREATE_DATABASE_DATABASE:-}" ;;
      remove)
        rm -f "$state/customer-$slug"
        echo '{}' ;;
      observe)
        if [ -f "$state/customer-$slug" ]; then
            printf '{"customer_id": "%s"}\\n' "$(cat "$state/customer-$slug")"
        else
            echo null
        fi ;;
    esac
    ''')


def install_step_package(site: Path) -> Path:
    """Write the step package and its distribution metadata under ``site`` (to be put on
    ``sys.path``): entry points ``seed-records``, ``broken-import``, ``not-a-step``."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "tenantops_test_steps.py").write_text(STEP_MODULE)
    (site / "tenantops_test_broken.py").write_text(
        "raise ImportError('no module named acme_sdk')\n")
    dist = site / "tenantops_test_steps-1.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tenantops-test-steps\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[tenantops.steps]\n"
        "seed-records = tenantops_test_steps:SeedRecords\n"
        "broken-import = tenantops_test_broken:Broken\n"
        "not-a-step = tenantops_test_steps:NotAStep\n")
    return site


def write_command(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "create_billing_customer.sh"
    script.write_text(COMMAND_STEP)
    os.chmod(script, 0o755)
    return script
