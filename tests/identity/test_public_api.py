from __future__ import annotations

import inspect

import tenantops.identity as identity
from tenantops.identity import doctor


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name, value in vars(identity).items()
              if not name.startswith("_") and not inspect.ismodule(value)
              and name != "annotations"}
    assert set(identity.__all__) == public
    assert sorted(identity.__all__) == identity.__all__


def test_every_exported_name_comes_from_the_identity_package() -> None:
    for name in identity.__all__:
        value = getattr(identity, name)
        module = getattr(value, "__module__", "")
        assert module.startswith("tenantops.identity.") or (
            module == "tenantops.errors" and name.endswith("Error")), (name, module)


def test_doctor_exports_its_report_types() -> None:
    assert set(doctor.__all__) == {"Doctor", "DoctorReport", "Step", "StepStatus", "Verdict",
                                   "run_doctor"}
