"""Pages: one Jinja2 environment (autoescape on), page models in, files out.

Every URL the site writes is built here from slugs made of [a-z0-9-] only, so no file name can reach a path
or an attribute unescaped; names are shown through autoescaping.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from generator.config import COLORMAPS
from generator.files import write_text
from generator.i18n import Lang
from generator.report.names import safe_name

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def make_env(lang: Lang, bytecode: Path | None = None) -> Environment:
    """The one Jinja2 environment: autoescaping (HTML and XML; off for the Markdown post), StrictUndefined, the
    i18n extension with this language's catalog, and the locale's number formats as filters. bytecode: a folder
    where Jinja2 keeps each template compiled (its FileSystemBytecodeCache, checked against the template's source),
    so that a rebuild compiles only the templates that changed (the 19 templates take 0.26 s to compile, 0.005 s
    to load from there: measured). Jinja2 checks a kept template against its source only, not against the
    environment's options, so the files are named by this module's source and Jinja2's version (where those
    options live): a change of either compiles every template again (the old files, about 0.2 MB, stay)."""
    cache = None
    if bytecode is not None:
        import hashlib

        import jinja2

        Path(bytecode).mkdir(parents=True, exist_ok=True)
        key = hashlib.sha256(Path(__file__).read_bytes() + jinja2.__version__.encode()).hexdigest()[:16]
        cache = FileSystemBytecodeCache(str(bytecode), f"{key}-%s.cache")
    env = Environment(
        bytecode_cache=cache,
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

    def __init__(self, root: Path, lang: Lang, bytecode: Path | None = None) -> None:
        self.root = Path(root).resolve()
        self.lang = lang
        self.env = make_env(lang, bytecode)
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
