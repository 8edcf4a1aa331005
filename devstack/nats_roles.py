"""NATS users of nodeview, one per role, each denied what its role must never do.

The same rules are in ``deploy/k8s/base/nats/nats.conf``; ``nodeview dev`` and the tests start
nats-server with them, so a service that oversteps its role fails here first.
"""

import json
import secrets
from dataclasses import dataclass

ROLES = ("relay", "enricher", "api")

_NEVER = ("$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>")
"""No service removes streams or messages: that is an operator's act."""

DENIED_PUBLISH: dict[str, tuple[str, ...]] = {
    # The relay only adds Consul changes and resync requests: no view, meta, heartbeat or lock.
    "relay": ("$KV.>", "$JS.API.CONSUMER.>", "nodeview.dlq.>", *_NEVER),
    # The enricher writes views and holds the lock; it never invents Consul changes.
    "enricher": ("nodeview.consul.>", "nodeview.delta.>", *_NEVER),
    # The API faces clients: it reads the view and asks for resyncs, nothing else.
    "api": ("$KV.>", "nodeview.consul.>", "nodeview.delta.>", "nodeview.dlq.>", *_NEVER),
}


@dataclass(frozen=True)
class RoleUser:
    """One role's NATS credentials."""

    role: str
    user: str
    password: str


def role_users(prefix: str = "nodeview-") -> dict[str, RoleUser]:
    """New random credentials for every role."""
    return {role: RoleUser(role, f"{prefix}{role}", secrets.token_urlsafe(18)) for role in ROLES}


def authorization_config(users: dict[str, RoleUser]) -> str:
    """The ``authorization`` block of a nats-server configuration for ``users``."""
    entries = []
    for role, user in users.items():
        deny = ", ".join(json.dumps(subject) for subject in DENIED_PUBLISH[role])
        entries.append(
            f"    {{user: {json.dumps(user.user)}, password: {json.dumps(user.password)}, "
            f"permissions: {{publish: {{deny: [{deny}]}}}}}}"
        )
    return "authorization {\n  users: [\n" + "\n".join(entries) + "\n  ]\n}\n"
