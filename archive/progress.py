"""Progress for long library work: ``factory(n)`` -> a context with ``.update(k)``, or nothing.

The libraries take a ``progress_factory`` (the CLI passes click progress bars); this keeps the
"no factory, or too few items to bother" case out of every caller.
"""
from __future__ import annotations

PROGRESS_MIN = 50  # below this many items a progress bar is noise


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, k):
        pass


def progress(factory, n: int):
    """A progress context from ``factory(n)``, or a no-op when there is none or ``n`` is small."""
    if factory is not None and n >= PROGRESS_MIN:
        return factory(n)
    return _Null()
