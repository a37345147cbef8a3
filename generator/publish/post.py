"""The blog companion: site/post/, a Markdown post ready to drop into a Jekyll blog (minimal-mistakes theme).

post/<date>-cam-report.md has the front matter of the original post (layout single, toc, use_math), the same
story as report.html, the CAM formula for MathJax, and its figures under post/assets/images/post_images/,
linked from --post-assets-url with kramdown's centring attribute.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from generator.i18n import Lang
from generator.publish.render import SiteWriter
from generator.report import findings

PREFIX = "cam-report-"  # the figures' names in the blog's shared image folder, so they never clobber others
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#])")


def md_escape(text: str) -> str:
    """Text as Markdown that renders as the same text: markup characters escaped, and <, >, & as entities, so
    nothing in a file name can become HTML in the blog."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def post_name(started: str) -> str:
    return f"{datetime.fromisoformat(started).date().isoformat()}-cam-report.md"


def yaml_str(text: str) -> str:
    """A YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def write(writer: SiteWriter, report, lang: Lang) -> None:
    s = report.settings
    sections = findings.story(report, lang)
    shown = {f["file"] for f in report.figures}
    figures = sorted({f for sec in sections for f in sec.figures if f in shown})
    for f in figures:
        writer.link(writer.path(f"figures/{f}"), f"post/assets/images/post_images/{PREFIX}{f}")
    alt = {f["file"]: f["alt"] for f in report.figures}
    writer.page(f"post/{post_name(report.run.started)}", "post.md",
                sections=sections, title=yaml_str(lang._("Where does a cat-vs-dog classifier look? CAM, step by step")),
                date=datetime.fromisoformat(report.run.started).date().isoformat(),
                assets=s.post_assets_url, prefix=PREFIX, alt=alt, shown=shown, site_url=s.site_url,
                md=md_escape, yaml=yaml_str)
