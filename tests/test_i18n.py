"""generator/i18n.py and templates/locale: the Korean catalog is complete and current, and a Korean build speaks
Korean in its navigation, headings and controls (file names, set names and library names aside)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from generator.i18n import LOCALE_DIR, Lang

ROOT = Path(__file__).resolve().parent.parent
PO = LOCALE_DIR / "ko" / "LC_MESSAGES" / "messages.po"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "n_": (1, 2)}


def catalog():
    with open(PO, "rb") as fh:
        return read_po(fh, locale="ko_KR")


def extracted() -> set[str]:
    """Every message the code and the templates use, as `make messages` finds them."""
    method_map = [("**.py", "python"), ("**.html", "jinja2"), ("**.md", "jinja2")]
    options = {"**.html": {"extensions": "jinja2.ext.i18n"}, "**.md": {"extensions": "jinja2.ext.i18n"}}
    found = set()
    for folder in ("generator", "templates"):
        for _file, _line, message, _comments, _context in extract_from_dir(
                ROOT / folder, method_map, options, keywords=KEYWORDS):
            found.add(message if isinstance(message, str) else message[0])
    return found


def test_korean_catalog_is_complete_and_well_formed():
    cat = catalog()
    entries = [m for m in cat if m.id]
    assert entries
    assert [m.id for m in entries if not m.string] == []
    assert [m.id for m in entries if m.fuzzy] == []
    assert [(m.id, errs) for m, errs in cat.check()] == []  # placeholders kept, %% matched


def test_korean_catalog_covers_every_message_in_use():
    have = {m.id for m in catalog() if m.id}
    missing = sorted(extracted() - have)
    assert missing == [], f"run `make messages` and translate: {missing[:10]}"


def test_lang_translates_and_fills_placeholders():
    ko = Lang("ko")
    assert ko._("cat") != "cat" and ko._("dog") != "dog"
    assert Lang("en")._("%(n)s photos", n="3") == "3 photos"
    assert "3" in ko._("%(n)s photos", n="3")


# Words that may stay Latin in a Korean page: names of things, not UI.
ALLOWED = {
    "cam", "grad", "gradcam", "layercam", "hirescam", "xgrad", "eigen", "score", "imagenet", "auroc", "ece", "msp",
    "jet", "viridis", "efficientnet", "lite", "lite0", "blocks", "bn2", "conv", "head", "resnet", "layer", "test",
    "personal", "unrelated", "train", "png", "jpg", "jpeg", "webp", "csv", "results", "leaderboard", "make", "site",
    "sha256", "pth", "rise", "relu", "auc", "energy", "logsumexp", "torch", "pytorch", "timm", "cpu", "cuda",
    "bf16", "channels", "last", "auto", "ok", "yes", "no", "samples", "layers", "confusion", "reliability",
    "confidence", "attention", "neither", "figures", "cat", "dog", "cats", "dogs", "post", "md",
    "iou",  # intersection over union: Korean engineers write it as it is
}


@pytest.fixture(scope="module")
def korean_site(small_site, tmp_path_factory):
    from generator.build import build_site

    settings, _ = small_site
    out = tmp_path_factory.mktemp("ko") / "site"
    build_site(dataclasses.replace(settings, site_dir=out, lang="ko"), log=lambda _m: None, progress=False)
    return out


def test_korean_build_has_no_english_ui_strings(korean_site):
    html5lib = pytest.importorskip("html5lib")
    offenders = set()
    pages = sorted(korean_site.rglob("*.html"))
    assert pages
    for page in pages:
        doc = html5lib.parse(page.read_bytes(), namespaceHTMLElements=False)
        assert doc.get("lang") == "ko", page
        for el in doc.iter():
            if el.tag not in ("a", "h1", "h2", "h3", "h4", "button", "legend", "label", "option", "th", "caption"):
                continue
            if el.tag == "a" and el.get("class") not in (None, "brand") or "fname" in (el.get("class") or ""):
                continue  # links to photos show file names
            text = " ".join(" ".join(el.itertext()).split())
            for word in re.findall(r"[A-Za-z][A-Za-z0-9]{2,}", text):
                if word.lower() not in ALLOWED and not re.search(re.escape(word) + r"[./_-]\w", text):
                    offenders.add((page.name if "sets" not in page.parts else "sets/…", el.tag, word))
    assert sorted(offenders) == []


def test_korean_report_and_post_are_korean(korean_site):
    report = (korean_site / "report.html").read_text(encoding="utf-8")
    assert '<html lang="ko">' in report
    hangul = len(re.findall(r"[\uac00-\ud7a3]", report))
    assert hangul > 1000
    post = next((korean_site / "post").glob("*.md")).read_text(encoding="utf-8")
    assert "CAM" in post and len(re.findall(r"[\uac00-\ud7a3]", post)) > 500
