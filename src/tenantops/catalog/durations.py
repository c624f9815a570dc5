"""How long an attempt, a step and a run took, defined once; the API, the CLI and the
dashboard all show these numbers.

- An **attempt** lasts from its start to its end; one still running, until ``now``. An
  interrupted attempt (its worker stopped before it ended) has no known end and counts as 0.
- A **step** lasts, in each execution of its run (the first, and one more per retry), from the
  start of its first attempt to the end of its last, the waits between its attempts (backoff
  after a transient fault, polling a pending operation) included; its duration is the sum
  over the executions. The time a run spent failed or cancelled, waiting for someone to retry
  it, is in no duration.
- A **run** lasts, in each execution, from the start of the first attempt of any step to the
  end of the last one, summed over its executions.

So a step never lasts longer than its run, and the steps of one execution (which run one
after another) add up to at most the run's time in it. A run or step with no attempt yet has
no duration (None).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from tenantops.catalog.runs import Attempt, Run, Step

__all__ = ["attempt_seconds", "run_seconds", "step_seconds"]


def _end(attempt: Attempt, now: dt.datetime) -> dt.datetime:
    if attempt.finished_at is not None:
        return attempt.finished_at
    return now if attempt.outcome == "running" else attempt.started_at


def attempt_seconds(attempt: Attempt, now: dt.datetime) -> float | None:
    """The attempt's duration; None when it was interrupted (no known end)."""
    if attempt.finished_at is None and attempt.outcome != "running":
        return None
    return max(0.0, (_end(attempt, now) - attempt.started_at).total_seconds())


def _span(attempts: Iterable[Attempt], now: dt.datetime) -> float | None:
    by_execution: dict[int, tuple[dt.datetime, dt.datetime]] = {}
    for attempt in attempts:
        end = _end(attempt, now)
        first, last = by_execution.get(attempt.execution, (attempt.started_at, end))
        by_execution[attempt.execution] = (min(first, attempt.started_at), max(last, end))
    if not by_execution:
        return None
    return sum(max(0.0, (last - first).total_seconds()) for first, last in
               by_execution.values())


def step_seconds(step: Step, now: dt.datetime) -> float | None:
    """The step's duration (see the module docstring)."""
    return _span(step.history, now)


def run_seconds(run: Run, now: dt.datetime) -> float | None:
    """The run's duration (see the module docstring)."""
    return _span((a for s in run.steps for a in s.history), now)
