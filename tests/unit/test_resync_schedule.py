"""Resync schedule and read retries: first reason wins, failures back off, requests batch."""

from dataclasses import dataclass

from services.enricher.planner import ResyncReason
from services.enricher.schedule import (
    READ_RETRY_MAX_SECONDS,
    RECHECK_MIN_SECONDS,
    RESYNC_REQUEST_MIN_INTERVAL_SECONDS,
    RESYNC_RETRY_MAX_SECONDS,
    RESYNC_RETRY_MIN_SECONDS,
    RequestBatch,
    ResyncSchedule,
    RetryPacing,
)


@dataclass
class FakeClock:
    """A monotonic clock the test moves by hand."""

    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_enricher_starts_with_a_resync_and_the_first_reason_wins() -> None:
    """``start`` is pending at once; a later reason does not replace a pending one."""
    schedule = ResyncSchedule(clock=FakeClock())
    schedule.need(ResyncReason.PERIODIC)
    assert schedule.take_due() is ResyncReason.START
    assert schedule.take_due() is None
    schedule.need(ResyncReason.STREAM_GAP)
    schedule.need(ResyncReason.PERIODIC)
    assert schedule.take_due() is ResyncReason.STREAM_GAP


def test_a_failing_resync_backs_off_doubling_up_to_the_maximum() -> None:
    """Each failure puts the next try further off, never beyond the maximum."""
    clock = FakeClock()
    schedule = ResyncSchedule(clock=clock)
    reason = schedule.take_due()
    assert reason is not None
    delays = [schedule.failed(reason) for _ in range(12)]
    assert delays[0] == RESYNC_RETRY_MIN_SECONDS
    assert delays == sorted(delays)
    assert delays[-1] == RESYNC_RETRY_MAX_SECONDS
    assert schedule.take_due() is None
    clock.now += RESYNC_RETRY_MAX_SECONDS
    assert schedule.take_due() is ResyncReason.START
    schedule.succeeded()
    assert schedule.failed(ResyncReason.PERIODIC) == RESYNC_RETRY_MIN_SECONDS


def test_degraded_lists_are_read_again_less_and_less_often() -> None:
    """A refused list asks for a resync, then not again before the back-off passed."""
    clock = FakeClock()
    schedule = ResyncSchedule(clock=clock, pending=None)
    schedule.recheck(lists_degraded=True)
    assert schedule.take_due() is ResyncReason.DEGRADED_ANSWER
    schedule.recheck(lists_degraded=True)
    assert schedule.take_due() is None
    clock.now += RECHECK_MIN_SECONDS
    schedule.recheck(lists_degraded=True)
    assert schedule.take_due() is ResyncReason.DEGRADED_ANSWER
    schedule.recheck(lists_degraded=False)
    assert schedule.take_due() is None


def test_a_burst_of_requests_shares_one_resync_per_interval() -> None:
    """Requests wait for the interval; a redelivered request collapses; failures put back."""
    clock = FakeClock()
    batch: RequestBatch[str] = RequestBatch(clock=clock)
    batch.add("a", "msg-a")
    assert batch.take_due() == {"a": "msg-a"}
    batch.add("b", "msg-b")
    batch.add("b", "msg-b-again")
    batch.add("c", "msg-c")
    assert batch.take_due() == {}
    clock.now += RESYNC_REQUEST_MIN_INTERVAL_SECONDS
    taken = batch.take_due()
    assert taken == {"b": "msg-b", "c": "msg-c"}
    batch.put_back(taken)
    clock.now += RESYNC_REQUEST_MIN_INTERVAL_SECONDS
    assert batch.take_due() == taken


def test_failing_reads_are_retried_less_and_less_often_with_jitter() -> None:
    """Each failed retry doubles the pause (within ±20 %), up to the maximum; success resets."""
    clock = FakeClock()
    pacing = RetryPacing(first=1.0, clock=clock, jitter=lambda: 1.0)
    assert pacing.due()
    for expected in (1.2, 2.4, 4.8, 9.6, 19.2, READ_RETRY_MAX_SECONDS * 1.2):
        start = clock.now
        pacing.tried(still_failing=True)
        clock.now = start + expected - 0.001
        assert not pacing.due()
        clock.now = start + expected
        assert pacing.due()
    pacing.tried(still_failing=False)
    assert pacing.due()
