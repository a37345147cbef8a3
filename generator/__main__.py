"""Command line: `python -m generator site|data|weights|clean`. Parsing and error reporting only; the work is in the
modules.

A mistake the user can fix (UserError) is one line on stderr and exit status 2; Ctrl-C (SIGINT) and SIGTERM
are one line and status 130 / 143, with the previous site left as it was. Anything else is a bug: traceback.
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
from dataclasses import fields
from pathlib import Path

from generator.config import Settings, add_arguments, settings_from_args, shown_default
from generator.errors import UserError

INTERRUPTED = ("interrupted: the previous site is unchanged and what was computed so far is kept; run the same "
               "command again to finish.")


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that cleanup runs as for Ctrl-C."""


def parser() -> argparse.ArgumentParser:
    lines = ["settings of `site` (each also a --flag of `python -m generator site`, or a key of its --config TOML):"]
    lines += [f"  {f.name} = {shown_default(f)}: {f.metadata['help']}" for f in fields(Settings)]
    p = argparse.ArgumentParser(
        prog="python -m generator",
        description="Explain a cat-vs-dog classifier with Class Activation Maps and publish it as a static site.",
        epilog="\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    site = sub.add_parser("site", help="train or load the classifier, compute the maps and write site/")
    site.add_argument("--config", metavar="FILE.toml", help="settings file; flags override it")
    site.add_argument("--source", type=Path, help="import train/test from this folder or zip if data/ lacks them")
    site.add_argument("--personal", type=Path, help="import this folder as the personal set if data/ lacks it")
    site.add_argument("--unrelated", type=Path, help="import this folder as the unrelated set if data/ lacks it")
    site.add_argument("--no-download", action="store_true", help="never use the network: stop if data/ lacks photos")
    site.add_argument("--quiet", action="store_true", help="no progress bars")
    add_arguments(site)
    data = sub.add_parser("data", help="import the image sets into data/ (downloads them unless --source is given)")
    data.add_argument("--source", type=Path, help="folder or zip laid out like cats_and_dogs_filtered.zip")
    data.add_argument("--personal", type=Path, help="folder of your own photos (cat/ and dog/ subfolders for labels)")
    data.add_argument("--unrelated", type=Path, help="folder of photos that are neither cats nor dogs")
    data.add_argument("--no-download", action="store_true", help="never use the network")
    data.add_argument("--url", default=Settings.data_url, help="where to download cats_and_dogs_filtered.zip from")
    data.add_argument("--data-dir", type=Path, default=Path("data"))
    data.add_argument("--oxford", action="store_true", help="also build an annotated set from the official "
                      "Oxford-IIIT Pet archives (downloads about 775 MB once; head boxes and pet outlines)")
    data.add_argument("--oxford-per-breed", type=int, default=10, metavar="N", help="photos per breed in that set "
                      "(37 breeds; a seeded sample)")
    data.add_argument("--oxford-set", default="oxford", metavar="NAME", help="name of that set's folder in data/")
    weights = sub.add_parser("weights", help="download torchvision's ResNet18 ImageNet weights into weights/")
    weights.add_argument("--weights-dir", type=Path, default=Path("weights"))
    breeds = sub.add_parser("breeds", help="the 37-breed example: link the Oxford-IIIT Pet photos into data/breeds/"
                            "{train,test}/<Breed>/, split seeded per breed")
    breeds.add_argument("--source", type=Path, default=Path("../shared/datasets/personal"),
                        help="folder of oxfordpet_<Breed>_<n>.jpg photos (default: ../shared/datasets/personal)")
    breeds.add_argument("--data-dir", type=Path, default=Path("data/breeds"))
    breeds.add_argument("--test-share", type=float, default=0.3, help="share of each breed's photos for testing")
    breeds.add_argument("--seed", type=int, default=0)
    clean = sub.add_parser("clean", help="delete the site, its build leftovers and the cache (only if this tool "
                           "wrote them)")
    clean.add_argument("--site-dir", type=Path, default=Settings.site_dir)
    clean.add_argument("--cache-dir", type=Path, default=Settings.cache_dir)
    return p


def run(args: argparse.Namespace) -> int:
    log = _log
    from generator.ownership import check_folder, check_paths

    if args.command == "clean":
        from generator.ownership import clean

        clean(args.site_dir, args.cache_dir, log=print)
        return 0
    if args.command == "data":
        from generator.config import check_url
        from generator.data.fetch import import_all

        check_url(args.url)
        check_folder("data_dir", args.data_dir)
        for line in import_all(args.data_dir, args.source, args.personal, args.unrelated,
                               download=not args.no_download, url=args.url, log=log):
            print(line)
        if args.oxford:
            from generator.data.oxford import import_oxford

            for line in import_oxford(args.data_dir, set_name=args.oxford_set, per_breed=args.oxford_per_breed,
                                      allow_network=not args.no_download, log=log):
                print(line)
        return 0
    if args.command == "breeds":
        from generator.data.breeds import link_breeds

        if not 0 < args.test_share < 1:
            raise UserError(f"--test-share {args.test_share} is not allowed: use a share between 0 and 1, e.g. 0.3.")
        check_folder("data_dir", args.data_dir)
        counts = link_breeds(args.source, args.data_dir, test_share=args.test_share, seed=args.seed)
        n_train, n_test = (sum(c[i] for c in counts.values()) for i in (0, 1))
        print(f"{args.data_dir}: {len(counts)} breeds, {n_train} training and {n_test} test photos (links to "
              f"{args.source}); build it with: make site ARGS=\"--data-dir {args.data_dir} --eval-sets test "
              f"--roles test=test --site-dir site-breeds\"")
        return 0
    if args.command == "weights":
        from generator.model.backbones import download_resnet18

        check_folder("weights_dir", args.weights_dir)
        print(download_resnet18(args.weights_dir))
        return 0
    settings = settings_from_args(args)
    check_paths(settings)  # before the photos are imported: every folder mistake is one sentence, exit 2
    from generator.build import build_site
    from generator.data.fetch import import_all

    defaults = adds_default_sets(settings)
    for line in import_all(settings.data_dir, args.source, args.personal, args.unrelated,
                           download=not args.no_download, only_missing=True, url=settings.data_url,
                           progress=not args.quiet, log=log, defaults=defaults):
        log(line)
    train = Path(settings.data_dir) / settings.train_set
    data = Path(settings.data_dir)
    sets_there = data.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in data.iterdir())
    # A folder that holds other sets but not this one: the build's own sentence names the setting and the sets.
    if not defaults and not sets_there and not (train.is_dir() and any(train.iterdir())):
        raise UserError(f"{train} is missing or empty, and a data folder you name is only read: give "
                        "SOURCE=<folder or .zip laid out like cats_and_dogs_filtered> to import photos into it, "
                        f"put <class>/ folders of photos in {train}, or run `make site` without --data-dir to "
                        "download the default photos into data/.")
    build_site(settings, log=log, progress=not args.quiet, paths_checked=True)
    return 0


def adds_default_sets(settings: Settings) -> bool:
    """Whether `site` may fill the data folder's missing sets with the defaults (the download, scikit-image's
    photos): only in the tool's own data/ (setting data_dir left at its default). A folder the user names is read,
    not written: only what --source, --personal or --unrelated ask for goes into it."""
    return Path(settings.data_dir).absolute() == Path(Settings.data_dir).absolute()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def terminate(_signum, _frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        return run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except Terminated:
        print(INTERRUPTED, file=sys.stderr)
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def exit_now(code: int) -> None:
    """End the process with `code` as sys.exit would (exit handlers run, output flushed), minus the interpreter's
    teardown of every object and module: with torch loaded and a build's results in memory that took 1.5 s of a
    build that computed (19.7 s against 17.3 s wall, 2 runs each). Every file the tool writes is closed by then
    (files.write_with). Falls back to sys.exit while another non-daemon thread still runs (its work would be
    cut off)."""
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or gone (a pipe the reader left): nothing more can be said
            pass
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
