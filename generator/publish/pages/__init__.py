"""The pages of the site: one registry of page kinds (site.PAGES), one module per kind, models in, files out.

Models are made from the Report (report/summary.py) and the per-photo records (maps.py) read one at a time from
the cache, so memory stays flat however many photos there are. What an image page takes from its record is cached
(pagedata.py), so a rerun for a template or a page setting neither decodes the records nor encodes their maps.
Rendering only: nothing here computes a metric.
A page kind is one module here (its KIND) plus its template; site.py lists the kinds in navigation order.
"""

from generator.publish.pages.kinds import PHOTO_KIND, PageKind
from generator.publish.pages.site import PAGES, common, write_site

__all__ = ["PAGES", "PHOTO_KIND", "PageKind", "common", "write_site"]
