"""What the Consul double's integration tests share: the control token and index reading."""

import httpx

CONTROL_TOKEN = "control-secret"
"""Token of the doubles these tests start with a control API."""


def index_of(response: httpx.Response) -> int:
    """The X-Consul-Index of a response."""
    return int(response.headers["X-Consul-Index"])
