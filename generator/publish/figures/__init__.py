"""Blog-ready matplotlib figures (PNG), drawn from the report; maps drawn by explain/overlay.py, the browser's twin.

One module per family (photos, accuracy, evidence), what they share in canvas.py, and the list of every figure in
catalog.py. Every figure is regenerated whenever the results, the figure settings or the language change.
"""

from generator.publish.figures.catalog import catalog, make_all

__all__ = ["catalog", "make_all"]
