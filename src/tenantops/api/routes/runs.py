"""``/api/runs/{id}``: a run's steps as they change; retry and cancel. ``/api/workers``: who
executes runs. ``/api/budgets``: the rate budgets' queues."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from tenantops.api.deps import EngineDep, require_role
from tenantops.api.routes.tenants import requester
from tenantops.api.schemas import BudgetsOut, Problem, RunOut, WorkersOut
from tenantops.auth import Principal

__all__ = ["router"]

router = APIRouter(tags=["runs"])

Reader = Annotated[Principal, Depends(require_role("Tenants.Read"))]
Writer = Annotated[Principal, Depends(require_role("Tenants.Write"))]

_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "no valid token"},
    403: {"model": Problem, "description": "valid token without the needed app role"},
    404: {"model": Problem, "description": "unknown run"},
}


@router.get("/runs/{run_id}", response_model=RunOut, responses=_RESPONSES)
def show_run(run_id: str, principal: Reader, engine: EngineDep) -> RunOut:
    """The run with every step's status, attempts, timings and error."""
    return RunOut.of(engine.get_run(run_id))


@router.post("/runs/{run_id}/retry", response_model=RunOut, status_code=202,
             responses={**_RESPONSES, 409: {"model": Problem,
                                            "description": "the run is not failed or cancelled"}})
def retry_run(run_id: str, principal: Writer, engine: EngineDep) -> RunOut:
    """Continue a failed run from its failed step, once the cause is fixed."""
    return RunOut.of(engine.retry(run_id, requested_by=requester(principal, engine)))


@router.post("/runs/{run_id}/cancel", response_model=RunOut, status_code=202,
             responses={**_RESPONSES, 409: {"model": Problem,
                                            "description": "the run has finished"}})
def cancel_run(run_id: str, principal: Writer, engine: EngineDep) -> RunOut:
    """Stop a pending or running run before its next step."""
    return RunOut.of(engine.cancel(run_id, requested_by=requester(principal, engine)))


@router.get("/workers", response_model=WorkersOut, responses={
    401: _RESPONSES[401], 403: _RESPONSES[403]})
def list_workers(principal: Reader, engine: EngineDep) -> WorkersOut:
    """The workers (engines) that execute runs, and whether each is alive: with none alive,
    requested runs wait until one starts."""
    config = engine.settings.engine
    return WorkersOut.of(engine.catalog.workers(), config.worker_timeout_seconds,
                         config.clock_skew_tolerance_seconds)


@router.get("/budgets", response_model=BudgetsOut, responses={
    401: _RESPONSES[401], 403: _RESPONSES[403]})
def list_budgets(principal: Reader, engine: EngineDep) -> BudgetsOut:
    """The rate budgets (engine.budgets) every worker keeps to, and each one's queue: calls
    reserved and not yet due, and how long a call asked for now would wait."""
    return BudgetsOut.of(engine.budgets())
