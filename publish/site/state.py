"""The site's state on a Datasette instance: the bundle, its small tables, caches.

:func:`publish.site.make_datasette` attaches one ``SiteState`` as ``datasette.testigo_site``;
every hook and page reads it through :func:`state_of` and does nothing without it.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


#: Registry completeness on the home page (issue 9), counted once at startup, beside ``mesas``
#: (the registry's) and ``counted``. Photos awaiting transcription (TEAM decision 4) are not
#: derivable from the bundle's tables: the build counts them from the workdir's queue
#: (``transcription.awaiting``) into datapackage.json, ``counts.photos_awaiting_transcription``.
COMPLETENESS_SQL = (
    ("mesas_with_acta", "select count(*) from mesas m where m.outside_registry = 0 "
                        "and exists (select 1 from actas a where a.mesa_id = m.id)"),
    ("actas_outside", "select count(*) from actas where outside_registry = 1"),
    ("mesas_outside", "select count(*) from mesas where outside_registry = 1"),
)


@dataclass
class SiteState:
    bundle: object
    cache_ttl: int = 600
    response_cache_bytes: int = 64 * 2**20
    candidates: list = field(default_factory=list)     # [{code, name, sort_order, cards}]
    cards: list = field(default_factory=list)          # [{position, candidate, party}]
    counts: dict = field(default_factory=dict)         # for the home page
    _election: object = None
    _election_error: str | None = None
    _warmed: bool = False
    _warm_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    cache: object = None        # publish.site.cache.ResponseCache, set by the ASGI wrapper
    pool: object = None         # publish.site.pool.SitePool: the site's own SQL threads (first query)
    policy: str = ""            # Content-Security-Policy of pages (publish.site.headers), set by the ASGI wrapper
    data_concurrency: int = 1   # Datasette pages computed at once (publish.site.gate)
    metadata: dict | None = None   # only on a plain `datasette serve`: given through get_metadata
    facetable: dict = field(default_factory=dict)   # {table: columns a visitor may facet by}
    gate: object = None         # publish.site.gate.Gate of the data browser's pages, set by the ASGI wrapper
    browser: object = None      # publish.site.browser.DataBrowser: Datasette's pages in their own process
    level_cache: dict = field(default_factory=dict)
    level_locks: dict = field(default_factory=dict)
    national: dict | None = None
    outside_line: dict | None = None     # the separate totals line "actas outside the registry"
    search_index: bytes | None = None   # /buscar/centros.json, built on first request
    issues_by_acta: bool = False
    audit: dict | None = None            # the bundle's audit (archive.audit_tables.read_audit), read once
    has_audit: bool | None = None        # the bundle has audit_* tables (built by a testigo with the audit)

    async def warm(self, datasette) -> None:
        """Load the small tables every page needs (once: the startup hook, or the first request
        that gets here before it has finished)."""
        if self._warmed:
            return
        async with self._warm_lock:
            if not self._warmed:
                await self._load(datasette)
                self._warmed = True

    async def _load(self, datasette) -> None:
        db = datasette.get_database(self.bundle.db_name)
        names = set(await db.table_names()) | set(await db.view_names())
        if "candidates" in names:
            rows = (await db.execute("select * from candidates order by sort_order, code")).rows
            self.candidates = [dict(r) for r in rows]
        if "cards" in names:
            self.cards = [dict(r) for r in (await db.execute("select * from cards order by position")).rows]
        counts = {}
        for sql_name, sql in (
            ("mesas", "select count(*) from mesas where outside_registry = 0"),
            ("counted", "select count(*) from actas where counted = 1"),
            ("images", "select count(*) from images"),
            *COMPLETENESS_SQL,
        ):
            try:
                counts[sql_name] = (await db.execute(sql)).rows[0][0]
            except Exception:
                counts[sql_name] = None
        built = (getattr(self.bundle, "testigo", None) or {}).get("counts") or {}
        counts["awaiting_transcription"] = built.get("photos_awaiting_transcription")   # None: older bundle
        # the electoral authority's count of mesas (with its source) when the definition knows it:
        # coverage is stated against it, against the registry's own rows only where it is unknown
        authority = built.get("authority_count") or {}
        counts["authority"] = authority if authority.get("mesas") else None
        counts["mesas_total"] = authority.get("mesas") or counts.get("mesas")
        self.counts = counts
        if "issues" in names:
            cols = await db.table_columns("issues")
            self.issues_by_acta = "acta_id" in cols
        # the election definition (for check-my-acta) reads the registry: off the event loop
        await asyncio.get_running_loop().run_in_executor(None, self.election)

    def election(self):
        """The election definition (for parse_payload), loaded on first use."""
        if self._election is None and self._election_error is None:
            try:
                from archive import election as election_mod
                self._election = election_mod.load(self.bundle.election_id)
            except Exception as e:
                self._election_error = str(e)
        return self._election


def state_of(datasette) -> SiteState | None:
    """The site's state, or None on a Datasette that is not the site. A plain `datasette serve`
    (as `datasette publish` deploys it) becomes the site when its metadata names the bundle:
    ``{"plugins": {"testigo_site": {"bundle": "PATH"}}}`` (state_from_config, below)."""
    if "testigo_site" not in vars(datasette):
        datasette.testigo_site = None            # set first: reading the config reads metadata
        datasette.testigo_site = state_from_config(datasette)
    return datasette.testigo_site


def state_from_config(datasette):
    """The site's state on a plain `datasette serve BUNDLE/DB.db --metadata M.json` whose
    metadata has ``{"plugins": {"testigo_site": {"bundle": "PATH"}}}`` (the route of
    `datasette publish`, see deploy/README.md); None without that configuration."""
    from .gate import DATA_CONCURRENCY
    from .indexes import facetable_columns
    from .app import PLUGIN_NAME, build_metadata, load_bundle
    from .errors import SiteError
    config = datasette.plugin_config(PLUGIN_NAME) or {}
    if not config.get("bundle"):
        return None
    bundle = load_bundle(config["bundle"], config.get("torrent"), config.get("places"))
    if bundle.db_name not in datasette.databases:
        raise SiteError(f"datasette serves {', '.join(datasette.databases)}, not the bundle's "
                        f"{bundle.db_path.name}: pass that file to datasette")
    state = SiteState(bundle=bundle, cache_ttl=int(datasette.setting("default_cache_ttl")),
                      response_cache_bytes=int(config.get("response_cache_mb", 64)) * 2**20,
                      data_concurrency=int(config.get("data_concurrency", DATA_CONCURRENCY)))
    state.metadata = build_metadata(bundle)
    state.facetable = facetable_columns(state.metadata, bundle.db_name)
    return state
