"""The site as static files anyone can host: ``static`` renders every page of a bundle's site
into a folder (through the site's own Datasette, in process); ``cli`` is ``testigo mirror``
(``--app`` writes the browser app instead: publish.app).

May import: ``archive``, ``publish.site`` (the app it renders), ``publish.app`` (the browser app).
"""
