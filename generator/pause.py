"""A hook for tests: CAM_PAUSE_AT=<point> makes a build say on stderr that it reached that point, then wait.

The tests that stop a build on purpose (SIGKILL, Ctrl-C, SIGTERM, a second build refused by the lock) send
their signal when the build itself says where it is, instead of polling for a file that may come and go
between two polls. The build waits until a line arrives on its standard input or the input closes, then goes
on. Unset (as for every user), nothing happens. Points, each paused at once per process:
- "locked": the site's lock is held, nothing else done yet;
- "explaining": the first batch of photos is explained and its records are written to the cache;
- "writing-site": the new site's hidden folder holds its figures; the pages come next;
- "finetuning": fine-tuning has written the state of a finished epoch and trains the first batch of the next.
"""

from __future__ import annotations

import os
import select
import sys

ENV = "CAM_PAUSE_AT"
POINTS = ("locked", "explaining", "writing-site", "finetuning")
_reached: set[str] = set()


def pause_at(point: str) -> None:
    """Wait here if CAM_PAUSE_AT names this point (the first time only)."""
    assert point in POINTS, point
    if os.environ.get(ENV) != point or point in _reached:
        return
    _reached.add(point)
    print(f"paused at {point} ({ENV}, process {os.getpid()}): waiting for a line on standard input",
          file=sys.stderr, flush=True)
    # Not one blocking readline: a signal the kernel hands to another thread (torch's, after the network ran) does
    # not interrupt the main thread's read, and its Python handler (Ctrl-C, SIGTERM) would wait for the line
    # forever. Waking every 0.1 s lets the handler run wherever the signal landed.
    while not select.select([sys.stdin], [], [], 0.1)[0]:
        pass
    sys.stdin.readline()
