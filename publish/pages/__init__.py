"""The public site's own pages, one module per page group; routes in ``publish.site_plugin``."""
