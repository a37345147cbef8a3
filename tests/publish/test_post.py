"""site/post/: a Jekyll post whose front matter parses, whose Markdown renders, and whose images are all there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from generator.publish.post import md_escape

yaml = pytest.importorskip("yaml")
markdown = pytest.importorskip("markdown")


def _post(site: Path) -> Path:
    posts = sorted((site / "post").glob("*-cam-report.md"))
    assert len(posts) == 1, posts
    return posts[0]


def test_front_matter_is_jekyll_yaml(small_site):
    settings, run = small_site
    post = _post(Path(settings.site_dir))
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-cam-report\.md", post.name)
    text = post.read_text(encoding="utf-8")
    head, body = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.S).groups()
    meta = yaml.safe_load(head)
    assert meta["layout"] == "single" and meta["toc"] is True and meta["use_math"] is True
    assert str(meta["date"]) == post.name[:10] == run["started"][:10]
    assert meta["title"] and isinstance(meta["categories"], list) and "CAM" in meta["tags"]
    assert "$$" in body and r"\sum_k w_k^c" in body  # the CAM formula, for MathJax


def test_markdown_renders_and_every_image_resolves(small_site, small_report):
    from generator.i18n import Lang
    from generator.report import findings

    settings, _ = small_site
    site = Path(settings.site_dir)
    post = _post(site)
    body = post.read_text(encoding="utf-8").split("---\n", 2)[2]
    html = markdown.markdown(body)
    assert html.count("<h2>") == len(findings.story(small_report[1], Lang(settings.lang)))  # a heading a section
    images = re.findall(r'<img alt="[^"]+" src="([^"]+)"', html)
    assert len(images) >= 3
    base = settings.post_assets_url
    for src in images:
        assert src.startswith(base), src
        local = post.parent / "assets" / "images" / "post_images" / src[len(base):]
        assert local.is_file() and local.stat().st_size > 1000, src
    # kramdown's centring attribute follows every image
    assert len(re.findall(r"\)\{: \.align-center\}", body)) == len(images)


def test_names_cannot_become_html_in_the_post():
    assert md_escape("<img src=x onerror=alert(1)>_a*b[c]") == r"&lt;img src=x onerror=alert(1)&gt;\_a\*b\[c\]"
    rendered = markdown.markdown(md_escape("<script>alert(1)</script> cat_and_dog *x*"))
    assert "<script>" not in rendered and "cat_and_dog *x*" in rendered.replace("&lt;", "<")
