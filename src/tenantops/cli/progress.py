"""Following a run: a live table of its steps on a terminal, one line per change elsewhere."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:  # rich loads when a run is followed
    from rich.console import Console
    from rich.table import Table

__all__ = ["FINISHED", "exit_for_run", "follow_run", "run_table", "step_details", "step_line"]

_MARK = {"succeeded": "✔", "failed": "✘", "running": "…", "waiting": "⏳", "retrying": "↻",
         "pending": "·", "cancelled": "⊘"}
FINISHED = ("succeeded", "failed", "cancelled")
EXIT_FAILED, EXIT_TIMED_OUT = 1, 6


def _duration(step: dict[str, Any]) -> str:
    seconds = step.get("duration_seconds")
    return "" if seconds is None else f"{seconds:.1f}s"


def step_line(step: dict[str, Any]) -> str:
    text = (f"{_MARK.get(step['status'], '?')} {step['name']:<22} {step['status']:<10} "
            f"attempts {step['attempts']} {_duration(step)}")
    if step.get("message") and step["status"] in ("waiting", "retrying", "running"):
        text += f"  ({step['message']})"
    if step.get("error"):
        text += f"\n    error: {step['error']}"
    return text


def _values(values: dict[str, Any] | None) -> str:
    return "  ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                     for k, v in (values or {}).items())


def step_details(step: dict[str, Any]) -> list[str]:
    """What the step asked for (resolved), what it produced, and its attempts when there
    was more than one or one failed: the lines under `step_line` in ``runs show``."""
    lines = []
    if step.get("resolved"):
        lines.append(f"    asked for: {_values(step['resolved'])}")
    if step.get("outputs"):
        lines.append(f"    produced:  {_values(step['outputs'])}")
    history = step.get("history") or []
    if len(history) > 1 or any(a.get("error") for a in history):
        for attempt in history:
            took = attempt.get("duration_seconds")
            when = "first execution" if not attempt["execution"] else (
                f"retry {attempt['execution']}")
            note = attempt.get("error") or attempt.get("message") or ""
            lines.append(f"    attempt {attempt['number']} ({when}) {attempt['outcome']:<11} "
                         f"{attempt['started_at']}" + (f" {took:.1f}s" if took is not None
                                                       else "") + (f"  {note}" if note else ""))
    return lines


def run_table(run: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title=f"{run['kind']} {run['tenant']} · run {run['id']} · {run['status']}",
                  title_justify="left", expand=False)
    for column in ("", "step", "provider", "status", "attempts", "time", "detail"):
        table.add_column(column)
    for step in run["steps"]:
        detail = step.get("error") or (step.get("message") if step["status"] != "succeeded"
                                       else "") or ""
        table.add_row(_MARK.get(step["status"], "?"), step["name"], step["provider"],
                      step["status"], str(step["attempts"]), _duration(step), detail)
    return table


def follow_run(fetch: Callable[[], dict[str, Any]], first: dict[str, Any], *,
               timeout: float, poll: float = 0.5, console: Console | None = None,
               quiet: bool = False) -> dict[str, Any]:
    """Poll ``fetch`` until the run finishes or ``timeout`` passes; return the last state."""
    from rich.console import Console
    from rich.live import Live

    console = console or Console(stderr=False, highlight=False)
    run = first
    deadline = time.monotonic() + timeout
    if quiet:
        while run["status"] not in FINISHED and time.monotonic() < deadline:
            time.sleep(poll)
            run = fetch()
        return run
    if console.is_terminal:
        with Live(run_table(run), console=console, refresh_per_second=8) as live:
            while run["status"] not in FINISHED and time.monotonic() < deadline:
                time.sleep(poll)
                run = fetch()
                live.update(run_table(run))
        return run
    seen: dict[str, tuple[str, int]] = {}
    console.print(f"{run['kind']} {run['tenant']}: run {run['id']}", soft_wrap=True)
    while True:
        for step in run["steps"]:
            state = (step["status"], step["attempts"])
            if seen.get(step["name"]) != state and step["status"] != "pending":
                seen[step["name"]] = state
                console.print(step_line(step), soft_wrap=True, markup=False)
        if run["status"] in FINISHED or time.monotonic() >= deadline:
            break
        time.sleep(poll)
        run = fetch()
    console.print(f"run {run['id']}: {run['status']}", soft_wrap=True)
    return run


def exit_for_run(run: dict[str, Any], as_json: bool, hint: str | None = None) -> None:
    """Print ``run`` as JSON when asked; exit non-zero unless it succeeded, saying why
    (``hint``: why an unfinished run is not moving)."""
    if as_json:
        typer.echo(json.dumps(run, indent=2, default=str))
    if run["status"] == "succeeded":
        return
    if run["status"] in ("pending", "running"):
        typer.echo(f"error: run {run['id']} is still {run['status']}; follow it with "
                   f"'tenantops runs show {run['id']} --wait'", err=True)
        if hint:
            typer.echo(f"hint: {hint}", err=True)
        raise typer.Exit(EXIT_TIMED_OUT)
    failed = next((s for s in run["steps"] if s["status"] == "failed"), None)
    where = f" at step {failed['name']}: {failed['error']}" if failed else ""
    typer.echo(f"error: run {run['id']} {run['status']}{where}. Fix the cause, then "
               f"'tenantops runs retry {run['id']}'", err=True)
    raise typer.Exit(EXIT_FAILED)
