"""Pages: one Jinja2 environment (autoescape on), page models in, files out.

Every URL the site writes is built here from slugs made of [a-z0-9-] only, so no file name can reach a path
or an attribute unescaped; names are shown through autoescaping.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import unicodedata
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from .config import COLORMAPS
from .files import write_text
from .i18n import Lang

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


def safe_name(text: str) -> str:
    """A file name as it can be shown: surrogate escapes (undecodable bytes) made visible."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def make_env(lang: Lang) -> Environment:
    """The one Jinja2 environment: autoescaping (HTML and XML; off for the Markdown post), StrictUndefined, the
    i18n extension with this language's catalog, and the locale's number formats as filters."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "xml"], default_for_string=True, default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(lang.t, newstyle=True)
    env.filters.update(pct=lang.pct, num=lang.num, seconds=lang.seconds, date=lang.date, name=safe_name)
    env.globals.update(lang=lang.code, colormaps=COLORMAPS)
    return env


class SiteWriter:
    """Writes pages and copies assets into a build folder; paths are always checked to stay inside it."""

    def __init__(self, root: Path, lang: Lang) -> None:
        self.root = Path(root).resolve()
        self.lang = lang
        self.env = make_env(lang)
        self._made: set[Path] = set()  # folders known to exist: one mkdir per folder, not per file
        self._fragments: dict[tuple, Markup] = {}
        self._resolved: dict[str, Path] = {}
        self.env.globals["fragment"] = self.fragment

    def fragment(self, template: str, key: object, **model: Any) -> Markup:
        """A part of a page that is the same on many pages (the navigation of a section, the map controls of a
        photo page), rendered once per key: the caller promises that `key` determines `model`."""
        k = (template, key)
        if k not in self._fragments:
            self._fragments[k] = Markup(self.env.get_template(template).render(**model))
        return self._fragments[k]

    def path(self, rel: str) -> Path:
        """The file `rel` (a '/'-separated path) inside the site; ValueError if it would land outside, through
        '..' or through a folder that is a link. Folders are resolved once each: thousands of pages share few."""
        folder, _, name = rel.rpartition("/")
        if name in ("", ".", ".."):
            raise ValueError(f"refusing to write outside the site: {rel!r}")
        parent = self._resolved.get(folder)
        if parent is None:
            parent = (self.root / folder).resolve()
            if not parent.is_relative_to(self.root):
                raise ValueError(f"refusing to write outside the site: {rel!r}")
            self._resolved[folder] = parent
        return parent / name

    def page(self, rel: str, template: str, **model: Any) -> None:
        depth = rel.count("/")
        self.text(rel, self.env.get_template(template).render(root="../" * depth, current=rel, **model))

    def _folder(self, out: Path) -> None:
        if out.parent not in self._made:
            out.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(out.parent)

    def text(self, rel: str, content: str) -> None:
        out = self.path(rel)
        self._folder(out)
        write_text(out, content, mkdir=False)

    def link(self, source: Path, rel: str) -> None:
        """Hard-link (or copy, across file systems) one file into the site."""
        target = self.path(rel)
        self._folder(target)
        try:
            os.link(source, target)
        except FileExistsError:
            return
        except OSError:
            shutil.copy2(source, target)

    def static(self) -> None:
        """The CSS and JS the templates use, from templates/static/."""
        for f in sorted((TEMPLATES / "static").iterdir()):
            if f.is_file():
                self.link(f, f"static/{f.name}")
