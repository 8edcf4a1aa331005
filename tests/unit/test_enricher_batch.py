"""Which messages of a fetched batch the enricher can leave undecoded, and the id they carry."""

from datetime import UTC, datetime
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st
from nats.aio.msg import Msg

from contracts import subjects
from services.enricher.app import observed_at, superseded_in_batch


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
