"""The data browser's gate: how many of Datasette's own pages are computed at once.

Datasette's table, query and row pages (filters, facets, sorts, CSV exports) can each cost a
second of SQL and tens of milliseconds of rendering on the server's one event loop. The
public's pages must not pay for a crowd of such requests, so only a few run at once, a few
more wait briefly, and the rest are told at once to come back later (503 with Retry-After)
instead of piling up in a queue that would take the whole server down with it.
"""
from __future__ import annotations

import asyncio
import contextlib

#: Data-browser requests computed at once: one of the machine's cores at most.
DATA_CONCURRENCY = 1
#: Requests allowed to wait for a turn. Waiting costs the server nothing (a sleeping coroutine)
#: and holds an attacker's connection idle; beyond this many, a 503.
DATA_QUEUE = 64
#: The longest a request waits for a turn before it gets its 503.
DATA_WAIT_S = 10.0
#: A refusal is not sent at once: an instant 503 invites an instant retry, and a client
#: retrying in a loop costs the server more than the pages it is refused.
REFUSAL_DELAY_S = 1.0
#: Seconds a visitor turned away (503) is asked to wait before trying again.
RETRY_AFTER_S = 10


class Busy(Exception):
    """No turn for this request now."""


class Gate:
    def __init__(self, concurrency: int = DATA_CONCURRENCY, queue: int = DATA_QUEUE,
                 wait_s: float = DATA_WAIT_S, refusal_delay_s: float = REFUSAL_DELAY_S):
        self.concurrency = max(1, int(concurrency))
        self.queue = max(0, int(queue))
        self.wait_s = wait_s
        self.refusal_delay_s = refusal_delay_s
        self.running = 0
        self.waiting = 0
        self.turned_away = 0
        self._free = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def turn(self):
        """Hold one of the gate's turns for the body's duration, or raise Busy (after a delay)."""
        if not await self._acquire():
            self.turned_away += 1
            await asyncio.sleep(self.refusal_delay_s)
            raise Busy()
        try:
            yield
        finally:
            async with self._free:
                self.running -= 1
                self._free.notify_all()

    async def _acquire(self) -> bool:
        async with self._free:
            if self.running >= self.concurrency:
                if self.waiting >= self.queue:
                    return False
                self.waiting += 1
                try:
                    await asyncio.wait_for(self._free.wait_for(lambda: self.running < self.concurrency),
                                           self.wait_s)
                except asyncio.TimeoutError:
                    return False
                finally:
                    self.waiting -= 1
            self.running += 1
            return True
