"""Named errors raised by the Consul HTTP API double."""


class ConsulDoubleError(Exception):
    """Base class of every error raised by the double."""


class UnknownNode(ConsulDoubleError):
    """A state operation named a node that is not a member or catalog node."""


class UnknownService(ConsulDoubleError):
    """A state operation named a service instance that is not registered."""


class UnknownServer(ConsulDoubleError):
    """A fault or topology operation named a server index that does not exist."""


class DoubleNotStarted(ConsulDoubleError):
    """An operation needs the HTTP servers running but they are not."""


class BadDuration(ConsulDoubleError):
    """A Go-style duration string such as ``10s`` could not be parsed."""


class BadWatchDefinition(ConsulDoubleError):
    """A watch definition is missing a field or names an unsupported type."""


class BadFilter(ConsulDoubleError):
    """A ``?filter=`` that go-bexpr refuses to parse, or to validate for the listed type."""


class HttpError(ConsulDoubleError):
    """An HTTP-level error answered to the client with a status and a text body."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
