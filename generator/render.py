"""Pages: one Jinja2 environment (autoescape on), page models in, files out.

Every URL the site writes is built here from slugs made of [a-z0-9-] only, so no file name can reach a path
or an attribute unescaped; names are shown through autoescaping.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import unicodedata
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def slugify(text: str, salt: str = "", limit: int = 48) -> str:
    """ASCII slug of a name plus a short hash of the exact name, so names differing only in case or Unicode
    normalization never collide."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:limit].strip("-") or "x"
    # surrogatepass: one-to-one for every str, surrogate escapes of undecodable bytes included
    digest = hashlib.sha1((salt + "\0" + text).encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{base}-{digest}"


PLAIN_SET_NAMES = ("train", "test", "personal", "unrelated")


def set_slug(name: str) -> str:
    """Folder of a set under sets/: the usual set names as they are, any other name slugified (with its hash,
    so it can never equal one of the plain names)."""
    return name if name in PLAIN_SET_NAMES else slugify(name, limit=24)


def unique_slugs(names: list[str], salts: list[str] | None = None, limit: int = 48) -> list[str]:
    """slugify of each (salt, name), made unique within the list even if two short hashes ever collide:
    a later duplicate gets -2, -3, ... (which no plain slug ends with: those end in 8 hex digits)."""
    salts = salts if salts is not None else [""] * len(names)
    out: list[str] = []
    taken: set[str] = set()
    for name, salt in zip(names, salts, strict=True):
        slug = slugify(name, salt=salt, limit=limit)
        n = 1
        candidate = slug
        while candidate in taken:
            n += 1
            candidate = f"{slug}-{n}"
        taken.add(candidate)
        out.append(candidate)
    return out


def fmt_pct(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * float(value):.{digits}f}%"


def fmt_num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):.{digits}f}"


def fmt_seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def safe_name(text: str) -> str:
    """A file name as it can be shown: surrogate escapes (undecodable bytes) made visible."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def make_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "xml", "j2"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pct=fmt_pct, num=fmt_num, seconds=fmt_seconds, name=safe_name)
    env.globals["Markup"] = Markup
    return env


class SiteWriter:
    """Writes pages and copies assets into a build folder; paths are always checked to stay inside it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.env = make_env()

    def path(self, rel: str) -> Path:
        out = (self.root / rel).resolve()
        if not out.is_relative_to(self.root):
            raise ValueError(f"refusing to write outside the site: {rel!r}")
        return out

    def page(self, rel: str, template: str, **model: Any) -> None:
        depth = rel.count("/")
        html = self.env.get_template(template).render(root="../" * depth, **model)
        out = self.path(rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")

    def text(self, rel: str, content: str) -> None:
        out = self.path(rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(content, encoding="utf-8")

    def link_tree(self, source: Path, rel: str) -> None:
        """Hard-link (or copy, across file systems) every file of `source` into `rel`."""
        dest = self.path(rel)
        dest.mkdir(parents=True, exist_ok=True)
        for f in Path(source).iterdir():
            if f.name.startswith(".") or f.name == "complete":
                continue
            target = dest / f.name
            if target.exists():
                continue
            try:
                os.link(f, target)
            except OSError:
                shutil.copy2(f, target)

    def static(self) -> None:
        """The CSS and JS the templates use, from templates/static/."""
        src = TEMPLATES / "static"
        dest = self.path("static")
        shutil.copytree(src, dest, dirs_exist_ok=True)
