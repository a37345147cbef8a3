"""Names of the site's files: URL-safe slugs of set and photo names, and file names as they can be shown.

Every URL the site writes is built from these slugs, made of [a-z0-9-] only, so no file name can reach a path
or an attribute unescaped.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata


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


def class_slug(name: str) -> str:
    """A class in a file name (the confusion cells' pages): the name itself when it is plain ASCII letters, digits,
    '_' and '-' (cat, dog, Abyssinian), otherwise slugified with its hash."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else slugify(name, limit=24)


def cell_page(set_slug_: str, label: str, prediction: str) -> str:
    """The page of a confusion cell: the photos labelled `label` and predicted `prediction`."""
    return f"sets/{set_slug_}/cell-{class_slug(label)}-as-{class_slug(prediction)}.html"


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
