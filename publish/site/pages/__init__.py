"""The public site's own pages, one module per page group; routes in ``publish.site.plugin``.

A page module (one with routes) takes what it needs from below (``..state``, ``common``,
``queries``, ``provenance``, ``choropleth``) and nothing imports a page but the plugin; a query
two pages need goes into ``queries``.
"""
