"""POSIX path rules, each written once for validation, storage and the worker: text only, no I/O.

Nothing here looks at a file system: a caller that must follow symlinks resolves the paths first.
"""

from __future__ import annotations

import posixpath
import re

_WILDCARD = re.compile(r"[*?\[]")  # POSIX pattern characters (IEEE Std 1003.1-2017, 2.13)


def has_wildcard(path: str) -> bool:
    """Whether `path` is a pattern (an output collecting every match) rather than one path."""
    return _WILDCARD.search(path) is not None


def normalize(path: str) -> str:
    """`path` without '.', '..' or repeated slashes. POSIX keeps a leading '//' (its meaning is
    left to the system); here it is '/' like any other run of slashes."""
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/") if normal.startswith("/") else normal


def is_under(path: str, root: str) -> bool:
    """Segment by segment: /data/out is under /data and /data/out, not under /data/o; everything
    is under /. The paths are compared as given: normalize them first if they may not be."""
    return root == "/" or path == root or path.startswith(root.rstrip("/") + "/")


def path_problems(path: str, whole_root: bool) -> list[str]:
    """What is wrong with an absolute POSIX path (in a container or on the server's host);
    `whole_root` allows "/" itself."""
    if not path.startswith("/"):
        return ["must be an absolute path (start with /)"]
    problems = []
    if "\x00" in path:
        problems.append("must not contain a NUL byte")
    if ".." in path.split("/"):
        problems.append("must not contain a '..' segment")
    if not whole_root and not problems and normalize(path) == "/":
        problems.append("must name a file or directory below /, not / itself")
    return problems
