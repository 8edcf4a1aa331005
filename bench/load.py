"""A lean keep-alive HTTP/1.1 load client on raw asyncio streams, cheap enough not to limit."""

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

READ_LIMIT = 64 * 1024 * 1024
"""Largest header block or body chunk the client buffers (large node lists)."""

REQUEST_TIMEOUT_SECONDS = 30.0
"""Longest one request may take before the connection is dropped and an error counted."""


class LoadError(RuntimeError):
    """A response could not be read (closed connection, bad framing, timeout)."""


@dataclass
class Connection:
    """One keep-alive connection that sends GETs and reads whole responses."""

    host: str
    port: int
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect (again)."""
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, limit=READ_LIMIT
        )

    async def close(self) -> None:
        """Close the socket."""
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, int]:
        """Send one GET and read the whole answer; return (status, body bytes)."""
        if self.writer is None:
            await self.open()
        assert self.reader is not None
        assert self.writer is not None
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            status, length, chunked, close = _parse_head(head)
            size = await (
                _read_chunked(self.reader) if chunked else _read_exact(self.reader, length)
            )
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as error:
            await self.close()
            raise LoadError(str(error)) from error
        if close:
            await self.close()
        return status, size


def _parse_head(head: bytes) -> tuple[int, int, bool, bool]:
    """Status, content length, chunked flag and close flag of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) < 2 or not parts[1].isdigit():
        raise LoadError(f"bad status line {lines[0]!r}")
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    return int(parts[1]), length, chunked, close


async def _read_exact(reader: asyncio.StreamReader, length: int) -> int:
    """Read and drop ``length`` body bytes."""
    if length:
        await reader.readexactly(length)
    return length


async def _read_chunked(reader: asyncio.StreamReader) -> int:
    """Read and drop a chunked body; return its size."""
    total = 0
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        await reader.readexactly(size + 2)
        total += size
        if size == 0:
            return total


@dataclass
class RunResult:
    """Outcome of a load run: per-request latencies and the client's own CPU use."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    bytes: int = 0
    wall_seconds: float = 0.0
    client_cpu_seconds: float = 0.0

    @property
    def requests(self) -> int:
        """Requests answered."""
        return len(self.latencies)

    @property
    def rps(self) -> float:
        """Answered requests per second."""
        return self.requests / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def client_cpu_percent(self) -> float:
        """The load client's CPU use, in percent of one core."""
        return 100.0 * self.client_cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0


def _cpu() -> float:
    """CPU seconds used so far by this process (user + system)."""
    times = os.times()
    return times.user + times.system


async def run_load(
    url: str,
    *,
    concurrency: int,
    duration: float,
    max_requests: int,
    headers: dict[str, str] | None = None,
) -> RunResult:
    """GET ``url`` from ``concurrency`` keep-alive connections until time or count runs out."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    result = RunResult()
    deadline = time.perf_counter() + duration
    budget = [max_requests]

    async def worker() -> None:
        """One client: request after request on its own connection."""
        conn = Connection(parts.hostname or "127.0.0.1", parts.port or 80)
        try:
            while budget[0] > 0 and time.perf_counter() < deadline:
                budget[0] -= 1
                started = time.perf_counter()
                try:
                    status, size = await asyncio.wait_for(
                        conn.get(path, headers), REQUEST_TIMEOUT_SECONDS
                    )
                except (LoadError, TimeoutError):
                    result.errors += 1
                    await conn.close()
                    continue
                result.latencies.append(time.perf_counter() - started)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                result.bytes += size
        finally:
            await conn.close()

    cpu0, wall0 = _cpu(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.wall_seconds = time.perf_counter() - wall0
    result.client_cpu_seconds = _cpu() - cpu0
    return result
