"""FileMapper: where every container path of a task lives on the host.

Staging and the container runtime both ask it; neither derives host paths on its own. A
container path `/data/in.txt` maps to `<run_dir>/mounts/data/in.txt`. Paths that would leave the
mounts directory (`..`, or symlinks planted by an executor) are refused. It also decides the bind
mounts the task's containers share (`mounts`).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

from ..jobfiles import MOUNTS_DIR
from ..posix_paths import has_wildcard, is_under, normalize

# How a task is told that a symbolic link leads out of its files: where to is the host's business.
LEADS_OUTSIDE = "leads outside the task's directory through a symbolic link"


class PathEscape(ValueError):
    pass


class FileMapper:
    def __init__(self, run_dir: str | os.PathLike):
        self.root = (Path(run_dir) / MOUNTS_DIR).resolve()

    def host_path(self, container_path: str) -> Path:
        """The host path for an absolute container path; never outside the mounts directory."""
        if not container_path.startswith("/"):
            raise PathEscape(f"{container_path!r} is not an absolute path")
        normal = normalize(container_path)
        if ".." in normal.split("/"):
            raise PathEscape(f"{container_path!r} leaves the task's directory")
        host = self.root / normal.lstrip("/")
        self.check_inside(host)
        return host

    def check_inside(self, host: Path) -> None:
        """Refuse a host path whose real location (following symlinks) is outside the mounts."""
        real = Path(os.path.realpath(host))
        if not is_under(str(real), str(self.root)):
            raise PathEscape(f"{self.container_path(host)} {LEADS_OUTSIDE}")

    def container_path(self, host: Path) -> str:
        return "/" + str(Path(host).relative_to(self.root))

    def mounts(self, task: dict) -> list[Mount]:
        """The bind mounts a task's containers share: its data mounts, then its log file mounts."""
        data = self.data_mounts(task)
        return data + self.log_file_mounts(task, data)

    def data_mounts(self, task: dict) -> list[Mount]:
        """Outermost first: each input, the directory each output is collected from, each volume.
        A path under another mount needs none of its own. `/` itself is never mounted: a file
        directly under it is mounted alone."""
        wanted: dict[str, bool] = {}  # container path -> is a directory
        for item in task.get("inputs") or []:
            wanted[posixpath.normpath(item["path"])] = item.get("type") == "DIRECTORY"
        for item in task.get("outputs") or []:
            path, is_dir = _output_mount(item)
            wanted[path] = wanted.get(path, False) or is_dir
        for volume in task.get("volumes") or []:
            wanted[posixpath.normpath(volume)] = True
        if "/" in wanted:
            raise PathEscape("the container's root directory cannot be mounted")
        dirs = [p for p, is_dir in wanted.items() if is_dir]
        outermost = sorted(p for p in wanted if not any(is_under(p, d) for d in dirs if d != p))
        return [Mount(self.host_path(p), p, wanted[p]) for p in outermost]

    def log_file_mounts(self, task: dict, mounts: list[Mount]) -> list[Mount]:
        """A file mount for each executor stdout/stderr path that none of `mounts` covers. The
        worker writes those files on the host; without a mount a later executor could not read them."""
        extra: dict[str, Mount] = {}
        for executor in task.get("executors") or []:
            for path in (executor.get("stdout"), executor.get("stderr")):
                path = path and posixpath.normpath(path)
                if path and not any(mount.covers(path) for mount in mounts):
                    extra[path] = Mount(self.host_path(path), path, False)
        return list(extra.values())

    def prepare(self, mounts: list[Mount]) -> None:
        """Create the host side of every mount that staging did not create, so that the runtime
        never invents one (docker would make a missing file mount a directory, owned by root)."""
        for mount in mounts:
            if mount.is_dir:
                mount.host.mkdir(parents=True, exist_ok=True)
            else:
                mount.host.parent.mkdir(parents=True, exist_ok=True)
                mount.host.touch(exist_ok=True)
            self.check_inside(mount.host)


@dataclass(frozen=True)
class Mount:
    host: Path
    container: str
    is_dir: bool

    def covers(self, path: str) -> bool:
        """Whether the container path `path` (normalized) is this mount or inside it."""
        return path == self.container or (self.is_dir and is_under(path, self.container))


def _output_mount(output: dict) -> tuple[str, bool]:
    """Where an output is collected from: the output itself for a DIRECTORY, the path_prefix
    for a wildcard, the parent directory for a FILE (the file alone when its parent is `/`)."""
    path = posixpath.normpath(output["path"])
    if has_wildcard(path):
        return posixpath.normpath(output["path_prefix"]), True
    if output.get("type") == "DIRECTORY":
        return path, True
    parent = posixpath.dirname(path)
    return (path, False) if parent == "/" else (parent, True)
