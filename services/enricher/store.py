"""The nodes KV bucket as the enricher sees it: load what is there, write only what changed."""

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import nats.js.errors
from nats.js import JetStreamContext
from pydantic import ValidationError

from contracts import subjects
from contracts.views import Heartbeat, NodeView, ViewMeta
from services import bus
from services.enricher.leader import LeadershipLost


class ViewStore(Protocol):
    """Where views, the meta entry and the heartbeat are written."""

    async def put_view(self, view: NodeView, headers: Mapping[str, str]) -> None:
        """Write one node's view."""

    async def delete_view(self, node: str, headers: Mapping[str, str]) -> None:
        """Delete one node's view."""

    async def put_meta(self, meta: ViewMeta, headers: Mapping[str, str]) -> None:
        """Write the meta entry (after the views it describes)."""

    async def put_heartbeat(self, heartbeat: Heartbeat) -> None:
        """Write the heartbeat entry."""


WRONG_LAST_SEQUENCE = 10071
"""JetStream's error code for a write whose expected last subject sequence is not the last."""


class KvViewStore:
    """``ViewStore`` on the JetStream KV bucket ``nodeview_nodes``.

    Every write states the sequence of the key's last entry this enricher knows (from its load
    or its own writes): if another enricher wrote the key since, JetStream refuses the write and
    this one steps down (``LeadershipLost``) instead of overwriting a newer holder's view.
    """

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._last_seq: dict[str, int] = {}

    async def _checked(
        self,
        key: str,
        headers: Mapping[str, str],
        write: Callable[[Mapping[str, str]], Awaitable[int]],
    ) -> None:
        """Run ``write`` stating the key's last known sequence; step down if another moved it."""
        expected = {subjects.HEADER_EXPECTED_LAST_SUBJECT_SEQ: str(self._last_seq.get(key, 0))}
        try:
            self._last_seq[key] = await write({**headers, **expected})
        except nats.js.errors.APIError as exc:
            raise _conflict(key, exc) from exc

    async def _put(self, key: str, value: bytes, headers: Mapping[str, str]) -> None:
        await self._checked(key, headers, lambda h: bus.kv_put(self._js, key, value, h))

    async def put_view(self, view: NodeView, headers: Mapping[str, str]) -> None:
        """Write one node's view."""
        await self._put(subjects.node_key(view.node), view.model_dump_json().encode(), headers)

    async def delete_view(self, node: str, headers: Mapping[str, str]) -> None:
        """Delete one node's view."""
        key = subjects.node_key(node)
        await self._checked(key, headers, lambda h: bus.kv_delete(self._js, key, h))

    async def put_meta(self, meta: ViewMeta, headers: Mapping[str, str]) -> None:
        """Write the meta entry."""
        await self._put(subjects.KEY_META, meta.model_dump_json().encode(), headers)

    async def put_heartbeat(self, heartbeat: Heartbeat) -> None:
        """Write the heartbeat entry."""
        await self._put(subjects.KEY_HEARTBEAT, heartbeat.model_dump_json().encode(), {})

    async def load(self) -> tuple[dict[str, NodeView], ViewMeta | None]:
        """Read the views and meta the bucket holds now (left by an earlier enricher)."""
        views: dict[str, NodeView] = {}
        meta: ViewMeta | None = None
        self._last_seq.clear()
        async for update in bus.watch_nodes_bucket(self._js):
            if update is None:
                break
            self._last_seq[update.key] = update.seq
            if update.deleted:
                continue
            try:
                if update.key == subjects.KEY_META:
                    meta = ViewMeta.model_validate_json(update.value)
                elif subjects.node_from_key(update.key) is not None:
                    view = NodeView.model_validate_json(update.value)
                    views[view.node] = view
            except ValidationError:
                continue
        return views, meta


class FencedStore:
    """A ``ViewStore`` that writes only while ``check`` passes (the lease is surely held).

    An enricher that lost its lease (CPU-starved refresh, NATS partition) stops writing before
    a standby can take over, instead of overwriting the new holder's views.
    """

    def __init__(self, store: ViewStore, check: Callable[[], None]) -> None:
        self._store = store
        self._check = check

    async def put_view(self, view: NodeView, headers: Mapping[str, str]) -> None:
        """Write one node's view, if still allowed."""
        self._check()
        await self._store.put_view(view, headers)

    async def delete_view(self, node: str, headers: Mapping[str, str]) -> None:
        """Delete one node's view, if still allowed."""
        self._check()
        await self._store.delete_view(node, headers)

    async def put_meta(self, meta: ViewMeta, headers: Mapping[str, str]) -> None:
        """Write the meta entry, if still allowed."""
        self._check()
        await self._store.put_meta(meta, headers)

    async def put_heartbeat(self, heartbeat: Heartbeat) -> None:
        """Write the heartbeat entry, if still allowed."""
        self._check()
        await self._store.put_heartbeat(heartbeat)


def _conflict(key: str, exc: nats.js.errors.APIError) -> Exception:
    """``LeadershipLost`` when another writer moved the key on; the error itself otherwise."""
    if exc.err_code == WRONG_LAST_SEQUENCE:
        return LeadershipLost(f"another enricher wrote {key}; stepping down")
    return exc
