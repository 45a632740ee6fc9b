"""Preflight: before a task is dispatched, look at every input it names, without downloading it.

Every object (an s3:// or local file, or each one under a DIRECTORY input) must exist, carry a
CRC64NVME, and not be encrypted with a key this server cannot use (SSE-KMS, SSE-C). What is seen
is recorded (`VerifiedInputs`: size, ETag, CRC64NVME per object) for the worker, which refuses
bytes that differ ("changed since submission"). A local file has no stored checksum: it is read
here to compute one. http(s) inputs are not verified (a web server keeps no checksum) and content
inputs need nothing.

Inputs are checked concurrently, at most `preflight_concurrency` requests at a time; the HEADs of
the objects found under a DIRECTORY input share the same bound.
"""

from __future__ import annotations

import functools
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

from ..urls import without_password
from . import storage_for
from .base import ObjectInfo, Storage, StorageError, missing_crc64nvme
from .checksums import decode
from .config import StorageConfig, VerifiedInputs


@dataclass(frozen=True)
class InputProblem:
    """Why the input `index` of a task cannot be used; `text` is "URL: reason"."""
    index: int
    text: str

    @property
    def line(self) -> str:
        return f"inputs[{self.index}] {self.text}"


@dataclass
class PreflightReport:
    """What preflight found: the verified entries of the good inputs, one problem per bad one."""

    verified: VerifiedInputs = field(default_factory=dict)  # for the job: what the worker re-checks
    input_problems: list[InputProblem] = field(default_factory=list)  # one per failing input or object, in input order

    @property
    def problems(self) -> list[str]:
        """One line per failing input or object, "inputs[N] URL: reason" (system logs, history)."""
        return [problem.line for problem in self.input_problems]


@dataclass(frozen=True)
class _Look:
    """One request of a preflight: a HEAD of an object, or the listing of a DIRECTORY input."""
    index: int
    url: str                     # of the object (or of the DIRECTORY, for a listing)
    directory: str | None        # the DIRECTORY input's URL when the object is one of its objects
    storage: Storage
    listing: bool = False


class InputPreflight(Protocol):
    """The one check of a task's url inputs before compute is spent: at create (`s3.verify_inputs
    = "create"`) or at dispatch. Built by `preflight_for`; tests may pass their own."""

    def __call__(self, inputs: list[dict]) -> PreflightReport: ...


def preflight_for(config: StorageConfig) -> InputPreflight:
    return functools.partial(preflight_inputs, config=config)


def preflight_inputs(inputs: list[dict], config: StorageConfig) -> PreflightReport:
    """Check every url input of a task; never raises for a fault of an input (it is a problem)."""
    preflight = _Preflight()
    first_looks = preflight.first_looks(inputs, config)
    with ThreadPoolExecutor(max_workers=max(1, config.preflight_concurrency), thread_name_prefix="preflight") as pool:
        preflight.look_all(first_looks, pool)
    return preflight.report()


@dataclass
class _Preflight:
    """What one preflight has found so far; only the thread that runs it changes it."""

    found: dict[int, dict[str, dict]] = field(default_factory=dict)     # input index -> object URL -> entry
    problems: list[tuple[int, str, str]] = field(default_factory=list)  # (index, URL, text), sorted at the end

    def first_looks(self, inputs: list[dict], config: StorageConfig) -> list[_Look]:
        """A HEAD of each verifiable url input, a listing of each DIRECTORY one. An input whose
        URL no storage serves is a problem at once; http(s) and content inputs need no look."""
        looks = []
        for index, item in enumerate(inputs):
            url = item.get("url")
            if item.get("content") is not None or not url:
                continue
            try:
                storage = storage_for(url, config)
            except StorageError as exc:
                self.problems.append((index, url, f"{exc.url}: {exc.reason}"))
                continue
            if storage.verifiable:
                self.found[index] = {}
                looks.append(_Look(index, url, None, storage, listing=item.get("type") == "DIRECTORY"))
        return looks

    def look_all(self, looks: list[_Look], pool: ThreadPoolExecutor) -> None:
        """Run `looks`, and a HEAD of every object their listings find, as many at once as `pool`
        has threads."""
        pending: dict[Future, _Look] = {}

        def start(look: _Look) -> None:
            verb = look.storage.list if look.listing else look.storage.stat
            pending[pool.submit(verb, look.url)] = look

        for look in looks:
            start(look)
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                for found_object in self._record(pending.pop(future), future):
                    start(found_object)

    def _record(self, look: _Look, future: Future) -> list[_Look]:
        """Record what one look saw; for a listing, the HEADs of the objects it found."""
        try:
            result = future.result()
        except StorageError as exc:
            self._problem(look, exc.reason)
            return []
        except Exception as exc:  # a fault of the check itself: still one line, not a crash
            self._problem(look, f"could not be checked: {type(exc).__name__}: {exc}")
            return []
        if look.listing:
            return [_Look(look.index, object_url, look.url, look.storage) for object_url in result]
        reason = _refusal(look, result)
        if reason:
            self._problem(look, reason)
        else:
            self.found[look.index][look.url] = {"url": look.url, "size": result.size, "etag": result.etag,
                                                "crc64nvme": result.checksum}
        return []

    def _problem(self, look: _Look, reason: str) -> None:
        self.problems.append((look.index, look.url, _text(look, reason)))

    def report(self) -> PreflightReport:
        failed = {index for index, _, _ in self.problems}
        verified = {str(index): [objects[url] for url in sorted(objects)] for index, objects in sorted(self.found.items())
                    if index not in failed}
        return PreflightReport(verified, [InputProblem(index, text) for index, _, text in sorted(self.problems)])


def _text(look: _Look, reason: str) -> str:
    where = without_password(look.url)
    if look.directory:
        where += f" (in the DIRECTORY {without_password(look.directory)})"
    return f"{where}: {reason}"


def _refusal(look: _Look, info: ObjectInfo) -> str | None:
    """Why an object cannot be an input, or None."""
    if info.is_dir:
        return "is a directory; declare the input's type DIRECTORY"
    if info.encryption == "SSE-C":
        return ("is encrypted with a customer-provided key (SSE-C), which this server does not hold; "
                "copy it to an object without SSE-C, or with SSE-S3 (`aws s3 cp --sse AES256 ...`)")
    if info.encryption and info.encryption.startswith("aws:kms"):
        return (f"is encrypted with SSE-KMS ({info.encryption}), which this server does not read; "
                "copy it to an object without KMS encryption, or with SSE-S3 (`aws s3 cp --sse AES256 ...`)")
    if info.checksum is None:
        return missing_crc64nvme(look.url, info)
    try:
        decode(info.checksum)
    except ValueError as exc:
        return f"has a CRC64NVME that cannot be read ({exc})"
    return None
