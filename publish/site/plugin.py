"""Datasette hooks of the public site: its pages, template helpers, cache headers.

Registered by :func:`publish.site.register_plugin`; every hook does nothing on a Datasette
that :func:`publish.site.make_datasette` did not configure (``datasette.testigo_site``).

Pages (``?lang=en`` for English; ``.json`` for the data of the page):
  /                   home: what this is, search, national totals, check-my-acta, downloads
  /buscar?q=          find a centre by code or place (full-text search), with its mesas
  /centro/CENTRO      one centre: its mesas and totals
  /mesa/CENTRO.MM     one mesa: acta image(s), numbers, participation, cross-check, flags
  /totales[/NIVEL/ID] totals by candidate: national (with the estado map), estado, municipio, ...
  /auditoria[/estado/COD]  the audit: consistency checks, forensic tests, official results beside the actas
  /comprobar          check my acta: a photo (QR read in the browser), the QR text, or the numbers
  /descargas          the bundle's files, signature, public key, torrent; how to verify
  /acerca             how the data was collected (the bundle README)
  /images/SHA256.EXT  an acta photo, read out of the bundle's zip shards
"""
from __future__ import annotations

from datasette import hookimpl

from .cache import CacheLayer, ResponseCache
from .gate import Gate
from .headers import page_policy
from .pages import areas, audit, check, home, mesa, photos, search
from .pages.common import answers_when_busy, helpers
from .state import state_of


@hookimpl
def extra_template_vars(request, datasette):
    st = state_of(datasette)
    if st is None:
        return {}
    h = helpers(request)
    h["site"] = st
    h["bundle"] = st.bundle
    return h


@hookimpl
def extra_css_urls(datasette):
    st = state_of(datasette)
    if st is None:
        return []
    return [f"/assets/site.css?v={st.bundle.static_version}"]


@hookimpl
def startup(datasette):
    st = state_of(datasette)
    if st is None:
        return None

    async def inner():
        await st.warm(datasette)
    return inner


#: The site's own pages (everything else is Datasette's data browser). publish.site.cache tells the
#: two apart with these same patterns.
ROUTES = [
    (r"^/$", home.home),
    (r"^/robots\.txt$", home.robots),
    (r"^/buscar(?P<fmt>\.json)?$", search.buscar),
    (r"^/buscar/centros\.json$", search.centros_index),
    (r"^/centro/(?P<centro>[^/]*?)(?P<fmt>\.json)?$", areas.centro_page),
    (r"^/mesa$", mesa.mesa_redirect),
    (r"^/mesa/(?P<id>[^/]*?)(?P<fmt>\.json)?$", mesa.mesa_page),
    (r"^/totales(?P<fmt>\.json)?$", areas.totales),
    (r"^/totales/(?P<nivel>[a-z]+)/(?P<id>[^/]*?)(?P<fmt>\.json)?$", areas.totales),
    (r"^/comprobar(?P<fmt>\.json)?$", check.comprobar),
    (r"^/auditoria(?P<fmt>\.json)?$", audit.auditoria),
    (r"^/auditoria/estado/(?P<code>[^/]*?)(?P<fmt>\.json)?$", audit.auditoria_estado),
    (r"^/descargas$", home.descargas),
    (r"^/descargas/(?P<name>[^/]+)$", home.descarga_file),
    (r"^/acerca$", home.acerca),
    (r"^/images/(?P<name>[^/]+)$", photos.photo),
]


@hookimpl
def register_routes(datasette):
    st = state_of(datasette)
    if st is None:
        return []
    routes = [(pattern, answers_when_busy(view)) for pattern, view in ROUTES]
    if st.metadata is not None:     # a plain `datasette serve`: the site's own files too
        from datasette.utils.asgi import asgi_static
        from .app import STATIC
        routes.append((r"^/assets/(?P<path>.*)$", asgi_static(str(STATIC))))
    return routes


@hookimpl
def get_metadata(datasette, key, database, table):
    """On a plain `datasette serve`, the site's metadata (titles, descriptions, canned queries,
    sortable columns); a metadata.json given to Datasette still wins where it says otherwise."""
    st = vars(datasette).get("testigo_site")        # never configure from here: reading the
    return st.metadata if st is not None and st.metadata else {}   # config calls this hook


@hookimpl
def prepare_jinja2_environment(env, datasette):
    """On a plain `datasette serve`, the site's templates without --template-dir."""
    st = state_of(datasette)
    if st is not None and st.metadata is not None:
        import jinja2
        from .app import TEMPLATES
        env.loader = jinja2.ChoiceLoader([env.loader, jinja2.FileSystemLoader(str(TEMPLATES))])


@hookimpl
def asgi_wrapper(datasette):
    st = state_of(datasette)
    if st is None:
        return None

    def wrap(app):
        st.cache = ResponseCache(st.response_cache_bytes)
        dirs = tuple(str(d) for d in [datasette.template_dir] if d)
        st.policy = page_policy(bool(datasette.setting("allow_facet")), dirs)
        st.gate = Gate(st.data_concurrency)
        return CacheLayer(app, st, [pattern for pattern, _ in ROUTES], st.gate)
    return wrap


@hookimpl
def handle_exception(datasette, request, exception):
    """Datasette answers a sort the metadata does not allow with a 500; it is the visitor's
    request that is wrong (400), and a 5xx must mean the server failed."""
    from datasette.views.base import DatasetteError
    if state_of(datasette) is not None and isinstance(exception, DatasetteError) \
            and str(exception.message).startswith("Cannot sort table by"):
        exception.status = 400
    return None
