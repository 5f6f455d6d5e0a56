"""The data process: Datasette's own pages (tables, SQL, exports) behind the public front.

Started by :class:`publish.site.browser.DataBrowser` as ``python -m publish.site.dataprocess
BUNDLE --uds PATH``; it serves on a Unix socket at a lower priority and exits with its parent.
"""
from __future__ import annotations

import os
import threading
import time

from .browser import NICE, coalesced


def _exit_with_parent(parent: int) -> None:
    """Exit when the front process is gone (even if it was killed without a chance to stop us)."""
    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)
    threading.Thread(target=watch, daemon=True, name="testigo-parent-watch").start()


def main(argv=None) -> None:
    import argparse

    import uvicorn

    from .server import make_datasette

    ap = argparse.ArgumentParser(description="testigo's data browser process (started by `testigo serve`)")
    ap.add_argument("bundle")
    ap.add_argument("--uds", required=True)
    ap.add_argument("--nice", type=int, default=NICE)
    ap.add_argument("--parent", type=int)
    ap.add_argument("--torrent")
    ap.add_argument("--cache-ttl", type=int)
    ap.add_argument("--allow-sql", action="store_true")
    a = ap.parse_args(argv)
    if a.parent:
        _exit_with_parent(a.parent)
    if a.nice:
        os.nice(a.nice)
    kw = {"cache_ttl": a.cache_ttl} if a.cache_ttl is not None else {}
    # No response cache here (the front keeps one) and no gate of its own (the front's counts).
    ds = make_datasette(a.bundle, torrent=a.torrent, allow_sql=a.allow_sql, response_cache_mb=0,
                        data_concurrency=1_000, **kw)
    config = uvicorn.Config(coalesced(ds.app()), uds=a.uds, log_level="warning", lifespan="on", server_header=False,
                            timeout_keep_alive=30)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
