"""Queue mode's retry policy: a failed run is retried with a doubling backoff until
[queue] max_attempts, a configuration error never, and a job stopped by a worker's
shutdown always, at once (it did not fail)."""

from __future__ import annotations

from procrastinate.exceptions import JobAborted
from procrastinate.jobs import Job

from inventory.config import QueueSettings
from inventory.errors import ConfigError
from inventory.queue import Backoff, SyncFailed

QUEUE = QueueSettings(max_attempts=3, retry_base_s=30, retry_max_s=100)


def job(attempts: int) -> Job:
    return Job(
        id=1, queue="default", lock="sync:s", queueing_lock="sync:s", task_name="inventory.sync",
        attempts=attempts,
    )  # fmt: skip


def delay(exception: BaseException, attempts: int) -> float | None:
    decision = Backoff(QUEUE).get_retry_decision(exception=exception, job=job(attempts))
    if decision is None:
        return None
    assert decision.retry_at is not None
    from datetime import UTC, datetime

    return round((decision.retry_at - datetime.now(UTC)).total_seconds())


def test_a_failed_run_is_retried_with_a_doubling_backoff_until_max_attempts() -> None:
    failed = SyncFailed("run 1 failed")
    assert [delay(failed, n) for n in range(4)] == [30, 60, None, None]


def test_a_configuration_error_is_not_retried() -> None:
    assert delay(ConfigError("no source named 'x'"), 0) is None


def test_a_job_stopped_by_a_shutdown_is_always_retried_at_once() -> None:
    # Even past max_attempts: rolling restarts during a long sync must not drop it.
    assert [delay(JobAborted("shutdown"), n) for n in (0, 2, 9)] == [0, 0, 0]
