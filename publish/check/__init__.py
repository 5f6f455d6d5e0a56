"""Does my photo of an acta match the archive? ``acta`` compares photos with a bundle or a live
site; ``cli`` is ``testigo check``.

May import: ``archive`` (reading, comparison), ``publish.site`` (a bundle's site, in process).
"""
