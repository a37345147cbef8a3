"""Command line: `python -m generator site|data|weights`. Parsing only; the work is in the modules."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import add_arguments, settings_from_args


def parser() -> argparse.ArgumentParser:
    from dataclasses import fields

    from .config import Settings

    lines = ["settings of `site` (each also a --flag of `python -m generator site`, or a key of its --config TOML):"]
    for f in fields(Settings):
        default = ",".join(f.default) if isinstance(f.default, tuple) else f.default
        lines.append(f"  {f.name} = {default!s}: {f.metadata['help']}")
    p = argparse.ArgumentParser(
        prog="python -m generator",
        description="Explain a cat-vs-dog classifier with Class Activation Maps and publish it as a static site.",
        epilog="\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    site = sub.add_parser("site", help="train or load the classifier, compute CAMs and write site/")
    site.add_argument("--config", metavar="FILE.toml", help="settings file; flags override it")
    site.add_argument("--source", type=Path, help="import train/test from this folder or zip if data/ lacks them")
    site.add_argument("--personal", type=Path, help="import this folder as the personal set if data/ lacks it")
    site.add_argument("--unrelated", type=Path, help="import this folder as the unrelated set if data/ lacks it")
    site.add_argument("--quiet", action="store_true", help="no progress bars")
    add_arguments(site)
    data = sub.add_parser("data", help="import the image sets into data/")
    data.add_argument("--source", type=Path, help="folder or zip laid out like cats_and_dogs_filtered.zip")
    data.add_argument("--personal", type=Path, help="folder of your own photos (cat/ and dog/ subfolders for labels)")
    data.add_argument("--unrelated", type=Path, help="folder of photos that are neither cats nor dogs")
    data.add_argument("--download", action="store_true", help="download the public zip when --source is not given")
    data.add_argument("--data-dir", type=Path, default=Path("data"))
    weights = sub.add_parser("weights", help="download torchvision's ResNet18 ImageNet weights into weights/")
    weights.add_argument("--weights-dir", type=Path, default=Path("weights"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "data":
        from .fetch import DataError, import_all

        try:
            for line in import_all(args.data_dir, args.source, args.personal, args.unrelated,
                                   download=args.download):
                print(line)
        except DataError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "weights":
        from .backbones import download_resnet18

        print(download_resnet18(args.weights_dir))
        return 0
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .backbones import WeightsError
    from .build import build_site, main_log
    from .fetch import DataError, import_all

    try:
        lines = import_all(settings.data_dir, args.source, args.personal, args.unrelated, only_missing=True)
        for line in lines:
            main_log(line)
        build_site(settings, log=main_log, progress=not args.quiet)
    except (DataError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
