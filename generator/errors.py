"""Errors a user can cause. Each carries one sentence that names the file or setting and the fix.

The command line prints that sentence and exits with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno


class UserError(Exception):
    """A mistake or a state of the machine the user can fix; str(exc) is the one sentence shown."""


class SettingsError(UserError, ValueError):
    """A setting (flag, TOML key or default) has a value that is not allowed."""


class DiskFull(UserError):
    """The disk filled up while writing; nothing half-written was kept."""


class NotWritable(UserError):
    """A folder the build must write into is read-only or not ours to write."""


class Busy(UserError):
    """Another build of the same site is running."""


def from_os_error(exc: OSError, path: object, doing: str) -> UserError | None:
    """The user-facing error for an OSError met while `doing` something to `path`, or None if it is a bug."""
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return DiskFull(f"the disk is full while {doing} {path}; free some space and run again "
                        "(nothing half-written was kept and the previous site is unchanged).")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return NotWritable(f"cannot write {path} ({exc.strerror}); make that folder writable, or choose another "
                           "one with the matching --*-dir setting.")
    return None
