"""Triage of a fetched batch: what is decoded, superseded, dead-lettered, late or a gap."""

from datetime import UTC, datetime
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st
from nats.aio.msg import Msg

from contracts import subjects
from contracts.events import ConsulChange, ConsulDelta
from services.enricher.deltas import overtaken
from services.enricher.planner import EnricherState
from services.enricher.triage import observed_at, superseded_in_batch, triage


def _msg(watch_type: str, key: str | None, index: int, digest: str | None = None) -> Msg:
    headers = {subjects.HEADER_MSG_ID: subjects.msg_id(watch_type, key, index, digest)}
    if digest:
        headers[subjects.HEADER_PAYLOAD_DIGEST] = digest
    return Msg(cast(Any, None), subject=subjects.consul_subject(watch_type), headers=headers)


@given(
    watch_type=st.sampled_from(subjects.WATCH_TYPES),
    key=st.none() | st.text(min_size=1, max_size=40).filter(lambda k: k != "-"),
    index=st.integers(min_value=0, max_value=2**64 - 1),
    digest=st.none() | st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
)
def test_parse_msg_id_reads_back_what_msg_id_wrote(
    watch_type: str, key: str | None, index: int, digest: str | None
) -> None:
    """Type, key (colons included) and index survive the round trip, with or without digest."""
    value = subjects.msg_id(watch_type, key, index, digest)
    assert subjects.parse_msg_id(value, digest) == (watch_type, key, index)


def test_parse_msg_id_refuses_other_ids() -> None:
    """Resync commands and foreign ids are not change ids."""
    assert subjects.parse_msg_id("resync:abc") is None
    assert subjects.parse_msg_id("nodes:-:x") is None
    assert subjects.parse_msg_id("whatever") is None
    assert subjects.parse_msg_id("") is None


def test_only_the_newest_message_of_each_watched_thing_is_kept() -> None:
    """Older (or equal, earlier) indexes of one (type, key) are superseded; others are kept."""
    batch = [
        _msg("nodes", None, 5),
        _msg("checks", None, 5),
        _msg("nodes", None, 7),
        _msg("key", "sites", 3),
        _msg("nodes", None, 6),
        _msg("key", "other", 1),
        _msg("checks", None, 5),
    ]
    assert superseded_in_batch(batch) == {0, 1, 4}


def test_user_events_resyncs_and_foreign_messages_are_always_decoded() -> None:
    """Every user event counts, commands are not changes, and unknown ids are left alone."""
    resync = Msg(
        cast(Any, None),
        subject=subjects.SUBJECT_CMD_RESYNC,
        headers={subjects.HEADER_MSG_ID: "resync:1"},
    )
    foreign = Msg(cast(Any, None), subject=subjects.consul_subject("nodes"), headers=None)
    batch = [_msg("event", "nodeview-resync", 4), _msg("event", "nodeview-resync", 9)]
    assert superseded_in_batch([*batch, resync, foreign, foreign]) == set()


def test_a_republished_change_with_a_digest_groups_with_its_watched_thing() -> None:
    """A change re-published after an index reset (id with digest) supersedes older ones."""
    batch = [_msg("nodes", None, 9), _msg("nodes", None, 9, "0123456789abcdef")]
    assert superseded_in_batch(batch) == {0}


def test_observed_at_reads_the_relays_header_and_ignores_garbage() -> None:
    """The relay's observation time comes back as UTC; a missing or bad header gives None."""
    msg = _msg("nodes", None, 1)
    assert observed_at(msg) is None
    assert msg.headers is not None
    msg.headers[subjects.HEADER_OBSERVED_AT] = "1700000000.250000"
    assert observed_at(msg) == datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=UTC)
    msg.headers[subjects.HEADER_OBSERVED_AT] = "soon"
    assert observed_at(msg) is None


def _delivered(
    subject: str,
    body: bytes,
    seq: int,
    *,
    delivered: int = 1,
    headers: dict[str, str] | None = None,
) -> Msg:
    """A message as a pull consumer hands it over (its reply subject carries the metadata)."""
    reply = f"$JS.ACK.NODEVIEW_EVENTS.enricher.{delivered}.{seq}.{seq}.1700000000000000000.0"
    return Msg(cast(Any, None), subject=subject, reply=reply, data=body)


def _delta_body(index: int, node: str) -> bytes:
    return (
        ConsulDelta(
            watch_type="nodes",
            consul_index=index,
            source="watcher",
            changed={node: {"Node": node, "Address": "10.0.0.1"}},
        )
        .model_dump_json()
        .encode()
    )


def _never(event: ConsulChange | ConsulDelta) -> bool:
    return False


def test_deltas_are_all_decoded_and_never_superseded() -> None:
    """Two deltas of one list in a batch both apply: each names its own nodes."""
    batch = [
        _delivered(subjects.delta_subject("nodes"), _delta_body(5, "a"), 1),
        _delivered(subjects.delta_subject("nodes"), _delta_body(6, "b"), 2),
    ]
    out = triage(batch, last_stream_seq=0, max_deliver=5, overtaken=_never)
    assert [c.consul_index for c in out.changes] == [5, 6]
    assert out.superseded == 0
    assert len(out.to_ack) == 2


def test_poison_and_over_delivered_messages_go_to_the_dead_letters() -> None:
    """Undecodable bodies, unknown subjects and too many deliveries are dead-lettered."""
    batch = [
        _delivered(subjects.delta_subject("nodes"), b"{not json", 1),
        _delivered("nodeview.other.thing", b"{}", 2),
        _delivered(subjects.delta_subject("nodes"), _delta_body(7, "c"), 3, delivered=6),
    ]
    out = triage(batch, last_stream_seq=0, max_deliver=5, overtaken=_never)
    assert [reason for _, reason, _ in out.dead] == ["undecodable", "undecodable", "max_deliver"]
    assert not out.changes
    assert not out.to_ack
    assert out.redelivered == 1


def test_a_skipped_sequence_on_first_delivery_is_a_gap() -> None:
    """A first delivery past the next sequence means messages were lost; a redelivery does not."""
    first = _delivered(subjects.delta_subject("nodes"), _delta_body(5, "a"), 12)
    again = _delivered(subjects.delta_subject("nodes"), _delta_body(5, "a"), 12, delivered=2)
    assert triage([first], last_stream_seq=10, max_deliver=5, overtaken=_never).gap
    assert not triage([again], last_stream_seq=10, max_deliver=5, overtaken=_never).gap
    assert not triage([first], last_stream_seq=11, max_deliver=5, overtaken=_never).gap


def test_a_redelivered_whole_answer_already_overtaken_is_not_applied_again() -> None:
    """A redelivery that would look like an index reset is counted late, not applied."""
    change = ConsulChange(watch_type="nodes", consul_index=3, source="watcher", payload=[])
    msg = _delivered(
        subjects.consul_subject("nodes"), change.model_dump_json().encode(), 4, delivered=2
    )
    state = EnricherState()
    state.event_index[("nodes", None)] = 5
    state.event_source[("nodes", None)] = change.origin
    out = triage([msg], last_stream_seq=9, max_deliver=5, overtaken=lambda e: overtaken(state, e))
    assert out.late == [change]
    assert not out.changes
    assert out.to_ack == [msg]
