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
    index: int
    url: str                     # of the object (or of the DIRECTORY, for a listing)
    directory: str | None        # the DIRECTORY input's URL when the object is one of its objects
    storage: Storage


class InputPreflight(Protocol):
    """The one check of a task's url inputs before compute is spent: at create (`s3.verify_inputs
    = "create"`) or at dispatch. Built by `preflight_for`; tests may pass their own."""

    def __call__(self, inputs: list[dict]) -> PreflightReport: ...


def preflight_for(config: StorageConfig) -> InputPreflight:
    return functools.partial(preflight_inputs, config=config)


def preflight_inputs(inputs: list[dict], config: StorageConfig) -> PreflightReport:
    """Check every url input of a task; never raises for a fault of an input (it is a problem)."""
    found: dict[int, dict[str, dict]] = {}      # input index -> object URL -> entry
    problems: list[tuple[int, str, str]] = []   # (index, URL, text), sorted at the end
    with ThreadPoolExecutor(max_workers=max(1, config.preflight_concurrency), thread_name_prefix="preflight") as pool:
        pending: dict[Future, tuple[str, _Look]] = {}

        def look(kind: str, item: _Look) -> None:
            verb = item.storage.list if kind == "list" else item.storage.stat
            pending[pool.submit(verb, item.url)] = (kind, item)

        for index, item in enumerate(inputs):
            url = item.get("url")
            if item.get("content") is not None or not url:
                continue
            try:
                storage = storage_for(url, config)
            except StorageError as exc:
                problems.append((index, url, f"{exc.url}: {exc.reason}"))
                continue
            if not storage.verifiable:
                continue
            found[index] = {}
            is_dir = item.get("type") == "DIRECTORY"
            look("list" if is_dir else "stat", _Look(index, url, None, storage))

        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                kind, item = pending.pop(future)
                try:
                    result = future.result()
                except StorageError as exc:
                    problems.append((item.index, item.url, _text(item, exc.reason)))
                    continue
                except Exception as exc:  # a fault of the check itself: still one line, not a crash
                    problems.append((item.index, item.url, _text(item, f"could not be checked: {type(exc).__name__}: {exc}")))
                    continue
                if kind == "list":
                    for object_url in result:
                        look("stat", _Look(item.index, object_url, item.url, item.storage))
                    continue
                reason = _refusal(item, result)
                if reason:
                    problems.append((item.index, item.url, _text(item, reason)))
                else:
                    found[item.index][item.url] = {"url": item.url, "size": result.size, "etag": result.etag,
                                                   "crc64nvme": result.checksum}

    failed = {index for index, _, _ in problems}
    verified = {str(index): [objects[u] for u in sorted(objects)] for index, objects in sorted(found.items())
                if index not in failed}
    return PreflightReport(verified, [InputProblem(index, text) for index, _, text in sorted(problems)])


def _text(item: _Look, reason: str) -> str:
    where = f"{without_password(item.url)} (in the DIRECTORY {without_password(item.directory)})" if item.directory else without_password(item.url)
    return f"{where}: {reason}"


def _refusal(item: _Look, info: ObjectInfo) -> str | None:
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
        return missing_crc64nvme(item.url, info)
    try:
        decode(info.checksum)
    except ValueError as exc:
        return f"has a CRC64NVME that cannot be read ({exc})"
    return None
