"""Connections to testigo's servers: none held open by a client that sends no whole request.

uvicorn closes a connection that stays idle *between* requests (``timeout_keep_alive``), but not
one that never finishes a request: a client that connects and sends nothing, or trickles a
header line now and then (slowloris), keeps its connection, and its file descriptor, for ever.
Measured on `testigo serve` with Debian's default of 1,024 open files per process: 1,500 such
connections from one client and every visitor timed out, for as long as the client liked.

:class:`ConnectionGuard` gives uvicorn a protocol class (``uvicorn.Config(http=...)``) that
  - closes a connection that has not sent a whole request head within ``deadline`` seconds of
    connecting, or of its previous answer (an absolute deadline: bytes trickling in do not
    extend it; an answer being computed or sent is never cut);
  - closes at once a connection beyond ``per_address`` open ones from the same address, except
    from the addresses a reverse proxy on this machine connects from (127.0.0.1, ::1), which
    carry every visitor's requests;
and :func:`raise_open_files_limit` lifts the process's soft limit of open files to its hard one,
so that the limit is the machine's, not a default meant for interactive shells.

Behind nginx (deploy/nginx.conf) the proxy already cuts slow clients; this is for a
`testigo serve` reached directly, and for `testigo transcribe` on a shared network.
"""
from __future__ import annotations

import asyncio
import resource
from collections import Counter

from uvicorn.protocols.http.h11_impl import H11Protocol

#: Seconds a client has to send a whole request head, from connecting or from its last answer.
REQUEST_DEADLINE_S = 10.0
#: Connections open at once from one address (a mobile carrier's NAT puts a whole neighbourhood
#: behind one; browsers open about six each).
PER_ADDRESS = 256
#: Addresses never capped: a reverse proxy on this machine (nginx) connects from these.
PROXY_ADDRESSES = frozenset({"127.0.0.1", "::1"})


class ConnectionGuard:
    """The state shared by one server's connections: how many each address holds open, and
    how many were closed for each reason (``closed['slow']``, ``closed['too_many']``)."""

    def __init__(self, deadline: float = REQUEST_DEADLINE_S, per_address: int = PER_ADDRESS,
                 exempt: frozenset[str] = PROXY_ADDRESSES):
        if deadline <= 0:
            raise ValueError("the request deadline must be positive")
        self.deadline, self.per_address, self.exempt = deadline, per_address, exempt
        self.open: Counter = Counter()
        self.closed: Counter = Counter()

    def counts(self, address: str | None) -> bool:
        """Whether connections from ``address`` are capped (not a local proxy's, cap not off)."""
        return address is not None and address not in self.exempt and self.per_address > 0

    def admit(self, address: str | None) -> bool:
        """Count a new connection from ``address``; False when it is one too many."""
        if not self.counts(address):
            return True
        if self.open[address] >= self.per_address:
            self.closed["too_many"] += 1
            return False
        self.open[address] += 1
        return True

    def release(self, address: str | None) -> None:
        if address in self.open:
            self.open[address] -= 1
            if self.open[address] <= 0:
                del self.open[address]

    def protocol(self) -> type[H11Protocol]:
        """The protocol class for ``uvicorn.Config(http=...)``, bound to this guard."""
        return type("GuardedH11Protocol", (_GuardedH11Protocol,), {"guard": self})


class _GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with the guard's deadline and per-address cap."""

    guard: ConnectionGuard

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._address = self.client[0] if self.client else None
        self._counted = False
        if not self.guard.admit(self._address):
            transport.close()
            return
        self._counted = self.guard.counts(self._address)
        self._await_request()

    def _await_request(self) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(self.guard.deadline, self._too_slow)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _waiting(self) -> bool:
        """No request in progress: none yet, or the last one answered."""
        return self.cycle is None or self.cycle.response_complete

    def _too_slow(self) -> None:
        self._deadline = None
        if self._waiting() and not self.transport.is_closing():
            self.guard.closed["slow"] += 1
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if not self._waiting():           # a whole request head arrived: it has its answer's time
            self._cancel_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()    # may start a pipelined request at once
        if self._waiting() and not self.transport.is_closing():
            self._await_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        if self._counted:
            self.guard.release(self._address)
            self._counted = False
        super().connection_lost(exc)


def raise_open_files_limit() -> tuple[int, int]:
    """Lift the soft limit of open files to the hard one (each connection holds one). Returns
    (soft, hard) as they are now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, hard
