"""``--wait``'s backoff while the API is unavailable, with an injected clock and sleep:
0.5 s doubling to 8 s (or the server's Retry-After), never past the deadline, then exit 6."""

from __future__ import annotations

from typing import Any, cast

import httpx
import pytest
import typer

from tenantops.cli.client import Api
from tenantops.identity import TenantOpsClient


class Answers:
    """A stand-in for `TenantOpsClient.request` that answers from a list, in order."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)

    def request(self, method: str, url: str, **_: Any) -> httpx.Response:
        return self.answers.pop(0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def unavailable(retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return httpx.Response(503, json={"error_description": "catalog down"}, headers=headers)


def api(answers: Answers, clock: Clock) -> Api:
    return Api(cast(TenantOpsClient, answers), "http://api.test/api", clock=lambda: clock.now,
               sleep=clock.sleep)


def test_backoff_doubles_from_half_a_second_until_the_api_answers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = Clock()
    answers = Answers(*[unavailable()] * 5, httpx.Response(200, json={"status": "running"}))

    result = api(answers, clock).poll("/runs/r1", deadline=100, what="run r1", again="x")

    assert result == {"status": "running"}
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0]
    err = capsys.readouterr().err
    assert err.count("warning:") == 1  # said once per outage
    assert "the API answers again after 15.5 s" in err


def test_retry_after_is_honoured_up_to_the_backoff_cap() -> None:
    clock = Clock()
    answers = Answers(unavailable("3"), unavailable("120"), httpx.Response(200, json={}))

    api(answers, clock).poll("/runs/r1", deadline=1000, what="run r1", again="x")

    assert clock.sleeps == [3.0, 8.0]


def test_the_deadline_bounds_the_waiting_and_then_exits_6(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = Clock()
    answers = Answers(*[unavailable()] * 10)

    with pytest.raises(typer.Exit) as exited:
        api(answers, clock).poll("/runs/r1", deadline=2.0, what="run r1",
                                 again="tenantops runs show r1 --wait")

    assert exited.value.exit_code == 6
    assert clock.sleeps == [0.5, 1.0, 0.5]  # the last sleep ends at the deadline
    err = capsys.readouterr().err
    assert "still unavailable after 2.0 s, when --timeout ran out" in err
    assert "follow it again with 'tenantops runs show r1 --wait'" in err


@pytest.mark.parametrize(("status", "code"), [(404, 4), (403, 3), (409, 5), (500, 1)])
def test_answers_that_waiting_cannot_change_exit_at_once(status: int, code: int) -> None:
    clock = Clock()
    answers = Answers(httpx.Response(status, json={"error_description": "no"}))

    with pytest.raises(typer.Exit) as exited:
        api(answers, clock).poll("/runs/r1", deadline=100, what="run r1", again="x")

    assert exited.value.exit_code == code
    assert clock.sleeps == []
