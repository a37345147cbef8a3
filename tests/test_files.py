"""generator/files.py: keep_newest deletes only the caller's own, least recently used cache files."""

from __future__ import annotations

import os
import re

from generator.files import keep_newest, touch, write_bytes

NAME = re.compile(r"v\d+-[0-9a-f]{4}\.pkl")


def test_keep_newest_keeps_the_most_recently_used_and_touches_nothing_else(tmp_path):
    made = []
    for i in range(6):
        p = write_bytes(tmp_path / f"v2-{i:04x}.pkl", b"x")
        os.utime(p, (1000 + i, 1000 + i))  # used in this order
        made.append(p)
    other = write_bytes(tmp_path / "notes.pkl", b"mine, not the cache's")  # another name: never deleted
    (tmp_path / "v2-ffff.pkl.tmp").write_bytes(b"")  # not a whole match either
    touch(made[0])  # the oldest is read again: now the most recently used
    gone = keep_newest(tmp_path, NAME, 3, in_use=[made[1]])  # made[1] is in use: spared although old
    assert sorted(p.name for p in gone) == ["v2-0002.pkl", "v2-0003.pkl"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["notes.pkl", "v2-0000.pkl", "v2-0001.pkl", "v2-0004.pkl", "v2-0005.pkl", "v2-ffff.pkl.tmp"]
    assert other.read_bytes() == b"mine, not the cache's"
    assert keep_newest(tmp_path / "missing", NAME, 1) == []  # no folder yet: nothing to do
