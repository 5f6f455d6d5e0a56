"""Progress for long library work: ``factory(n, label=None)`` -> a context with ``.update(k)``.

The libraries take a ``progress_factory`` (the CLI passes ``archive.cli.progress_bar``, click
progress bars with an ETA); this keeps the "no factory, or too few items to bother" case out of
every caller. A step of several stages names each one with ``label``.
"""
from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

PROGRESS_MIN = 50  # below this many items a progress bar is noise

T = TypeVar("T")


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, k):
        pass


def progress(factory, n: int, label: str | None = None):
    """A progress context from ``factory(n)`` (``factory(n, label=...)`` when a stage is named),
    or a no-op when there is no factory or ``n`` is small."""
    if factory is not None and n >= PROGRESS_MIN:
        return factory(n) if label is None else factory(n, label=label)
    return _Null()


def counted(items: Iterable[T], factory, n: int, label: str | None = None) -> Iterator[T]:
    """``items`` passed through, the bar advancing as each is consumed (for generators that a
    writer consumes: the bar is shown while they are read)."""
    with progress(factory, n, label) as bar:
        for item in items:
            yield item
            bar.update(1)
