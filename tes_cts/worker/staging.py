"""Staging: inputs into the task's mounts before the executors run, outputs out of them after.

Every host path comes from the FileMapper; every URL goes through `storage_for`. Inputs stop at
the first failure. Outputs: a missing or refused one is reported in `missing` and the others are
still uploaded; an upload failure stops staging at once (the task is a system error anyway).

Inputs are checked against what preflight recorded (`VerifiedInputs`, by input index): bytes that
differ fail staging with "changed since submission", and nothing is left of them. Each uploaded
output's CRC64NVME (S3 base64 form) is in its entry under `crc64nvme`. What moved, and how long
it took, goes to the attempt's `StagingMeter` (measurements.py) when one is given.
"""

from __future__ import annotations

import glob
import os
import posixpath
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..jobfiles import Job
from ..posix_paths import has_wildcard, normalize
from ..storage import INPUT, OUTPUT, Storage, StorageConfig, StorageError, VerifiedInputs, storage_for
from ..storage.atomic import atomic_file
from ..urls import without_password
from .measurements import StagingMeter
from .paths import LEADS_OUTSIDE, FileMapper, PathEscape


class StagingError(Exception):
    """One line saying which input or output failed and why."""


@dataclass
class StagedOutputs:
    outputs: list[dict] = field(default_factory=list)      # tesOutputFileLog dicts (size_bytes int) + crc64nvme
    missing: list[str] = field(default_factory=list)       # why outputs are absent or refused
    system_logs: list[str] = field(default_factory=list)


# --- inputs -----------------------------------------------------------------------------------


def stage_inputs(job: Job, mapper: FileMapper, config: StorageConfig, verified: VerifiedInputs,
                 meter: StagingMeter | None = None) -> list[str]:
    """Write every input into the mounts; one log line per input. Raises StagingError."""
    logs = []
    inputs = list(enumerate(job.task.get("inputs") or []))
    meter = meter or StagingMeter()
    # Outer paths first, so an input inside a DIRECTORY input lands in (and wins over) it.
    for index, item in sorted(inputs, key=lambda pair: _depth(pair[1]["path"])):
        logs.append(_stage_input(item, config, verified.get(str(index)), mapper, meter))
    return logs


def _stage_input(item: dict, config: StorageConfig, expected: list[dict] | None, mapper: FileMapper,
                 meter: StagingMeter) -> str:
    path, url, content = item["path"], item.get("url"), item.get("content")
    name = f"input {path}" if content is not None else f"input {path} ({without_password(url)})"
    is_dir = item.get("type") == "DIRECTORY"
    try:
        host = mapper.host_path(path)
        host.parent.mkdir(parents=True, exist_ok=True)
        if content is not None:
            with atomic_file(host, durable=False) as handle:
                handle.write(content.encode("utf-8"))
            return f"{name}: {len(content.encode('utf-8'))} bytes from content"
        if is_dir and os.path.lexists(host):
            _remove(host)  # put there by an outer DIRECTORY input; this one replaces it
        with meter.transfer(url, INPUT) as moved:
            size = storage_for(url, config).get(url, host, is_dir, expected)
            moved(size)
    except StorageError as exc:
        raise StagingError(f"{name}: {exc.reason}") from None
    except PathEscape as exc:
        raise StagingError(f"{name}: refused: {exc}") from None
    except OSError as exc:
        raise StagingError(f"{name}: {exc.strerror or exc}") from None
    checked = ", CRC64NVME verified" if expected is not None else ""
    return f"{name}: {'directory, ' if is_dir else ''}{size} bytes{checked}"


def _remove(host: Path) -> None:
    if host.is_dir() and not host.is_symlink():
        shutil.rmtree(host)
    else:
        host.unlink()


def _depth(path: str) -> int:
    return len([part for part in normalize(path).split("/") if part])


# --- outputs ----------------------------------------------------------------------------------


def stage_outputs(job: Job, mapper: FileMapper, config: StorageConfig, meter: StagingMeter | None = None) -> StagedOutputs:
    """Upload every output the task produced. Raises StagingError at the first failed upload."""
    staged = StagedOutputs()
    meter = meter or StagingMeter()
    for item in job.task.get("outputs") or []:
        try:
            storage = storage_for(item["url"], config)
        except StorageError as exc:
            raise StagingError(f"output {item['path']} ({without_password(item['url'])}): {exc.reason}") from None
        output = _Output(item, storage, mapper, staged, meter)
        if has_wildcard(item["path"]):
            output.wildcard()
        else:
            output.plain()
    return staged


class _Output:
    """Staging of one output item; appends to `staged` as it goes."""

    def __init__(self, item: dict, storage: Storage, mapper: FileMapper, staged: StagedOutputs, meter: StagingMeter):
        self.path, self.url = item["path"], item["url"]
        self.is_dir = item.get("type") == "DIRECTORY"
        self.prefix = item.get("path_prefix")
        self.storage, self.mapper, self.staged, self.meter = storage, mapper, staged, meter
        self.files = 0
        self.bytes = 0

    def plain(self) -> None:
        try:
            host = self.mapper.host_path(self.path)
        except PathEscape as exc:
            self.staged.missing.append(f"output {self.path}: refused: {exc}")
            return
        if not os.path.lexists(host):
            self.staged.missing.append(f"output {self.path}: not produced by the task")
            return
        if self.is_dir and not host.is_dir():
            self.staged.missing.append(f"output {self.path}: is a file, but the output's type is DIRECTORY")
        elif not self.is_dir and host.is_dir():
            self.staged.missing.append(f"output {self.path}: is a directory; declare the output's type DIRECTORY")
        elif self.is_dir:
            self._directory(host, self.path, self.url)
            self._log(f"output {self.path} (DIRECTORY)")
        else:
            self._file(host, self.path, self.url)
            self._log(f"output {self.path}")

    def wildcard(self) -> None:
        pattern = posixpath.normpath(self.path).lstrip("/")
        # root_dir keeps glob characters in the run directory's own path from counting.
        matches = sorted(glob.glob(pattern, root_dir=self.mapper.root))
        if not matches:
            self.staged.system_logs.append(f"output {self.path}: the pattern matched nothing")
            return
        prefix = posixpath.normpath(self.prefix)
        for match in matches:
            host, container = self.mapper.root / match, "/" + match
            if not self._inside(host, container):
                continue
            url = self.storage.join(self.url, posixpath.relpath(container, prefix))
            if host.is_dir():
                self._directory(host, container, url)
            else:
                self._file(host, container, url)
        self._log(f"output {self.path} ({len(matches)} matches)")

    def _directory(self, host: Path, container: str, url: str) -> None:
        """Every file under `host`, each to `url`/<its path relative to `host`>."""
        seen: set[str] = set()

        def unreadable(error: OSError) -> None:
            inner = _under(container, host, Path(error.filename))
            self.staged.missing.append(f"output {inner}: cannot be read: {error.strerror}")

        for directory, subdirectories, names in os.walk(host, onerror=unreadable, followlinks=True):
            real = os.path.realpath(directory)
            if real in seen:  # reached again through a symlink: walk each directory once
                subdirectories[:] = []
                continue
            seen.add(real)
            here = Path(directory)
            subdirectories[:] = [d for d in sorted(subdirectories) if self._inside(here / d, _under(container, host, here / d))]
            for name in sorted(names):
                file = here / name
                inner = _under(container, host, file)
                if self._inside(file, inner):
                    self._file(file, inner, self.storage.join(url, file.relative_to(host).as_posix()))

    def _file(self, host: Path, container: str, url: str) -> None:
        if not host.is_file():  # a FIFO, socket or device: reading it could block forever
            self.staged.missing.append(f"output {container}: not a regular file")
            return
        try:
            with self.meter.transfer(url, OUTPUT) as moved:
                info = self.storage.put(Path(os.path.realpath(host)), url)
                moved(info.size)
        except StorageError as exc:
            raise StagingError(f"output {container} ({exc.url}): {exc.reason}") from None
        self.staged.outputs.append({"url": url, "path": container, "size_bytes": info.size, "crc64nvme": info.checksum})
        self.files += 1
        self.bytes += info.size

    def _inside(self, host: Path, container: str) -> bool:
        """Whether `host` stays inside the mounts; a reason in `missing` when it does not."""
        try:
            self.mapper.check_inside(host)
            return True
        except PathEscape:
            self.staged.missing.append(f"output {container}: refused: it {LEADS_OUTSIDE}")
            return False

    def _log(self, name: str) -> None:
        self.staged.system_logs.append(f"{name}: {self.files} files, {self.bytes} bytes to {without_password(self.url)}")


def _under(container: str, host: Path, inner: Path) -> str:
    """The container path of `inner`, a host path under `host`, which maps to `container`."""
    return posixpath.join(container, inner.relative_to(host).as_posix())
