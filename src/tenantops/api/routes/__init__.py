"""One router per resource; `tenantops.api.main` mounts each under ``/api``."""
