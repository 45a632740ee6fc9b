"""What a task says of its own result, as tools built on the KLMS tool template write it.

Every executor finds in `TES_RESULT_FILE` a container path, in a directory of its own that no
other executor sees. If the file exists when the executor ends, its JSON object
`{"message": ..., "status": <HTTP-like code>, "metrics": {...}, "output": {...}}` is recorded in
the attempt's log metadata as strings: `result.message`, `result.status` and one
`result.metric.<name>` per metric (a later executor's keys replace an earlier one's). A file
that is too long or not such an object is said in the system logs and never fails the task.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

from .paths import Mount

VARIABLE = "TES_RESULT_FILE"
CONTAINER_DIR = "/tes-cts-result"
CONTAINER_PATH = f"{CONTAINER_DIR}/result.json"
RESULTS_DIR = "results"  # in the run directory: results/<executor>/result.json
MAX_BYTES = 64 * 1024
MAX_METRICS = 100
KEY_PREFIX = "result."


def result_mount(run_dir: str, index: int) -> Mount:
    """The directory executor `index` writes its result file into, created empty."""
    host = Path(run_dir) / RESULTS_DIR / str(index)
    host.mkdir(parents=True, exist_ok=True)
    return Mount(host, CONTAINER_DIR, True)


def read_task_result(mount: Mount, index: int) -> tuple[dict[str, str], list[str]]:
    """The metadata executor `index`'s result file gives, and lines for the system logs about a
    file that could not be used; nothing if the executor wrote none."""
    path = mount.host / Path(CONTAINER_PATH).name
    not_regular = [f"executor {index}: {VARIABLE} {CONTAINER_PATH} is not a regular file; not read"]
    try:
        # Not following a link the executor planted (to a host file), not waiting on a FIFO.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return {}, []
    except OSError as exc:
        return {}, not_regular if exc.errno == errno.ELOOP else [
            f"executor {index}: {VARIABLE} {CONTAINER_PATH} could not be read: {exc.strerror or exc}"]
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return {}, not_regular
        raw = handle.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        return {}, [f"executor {index}: {VARIABLE} {CONTAINER_PATH} is longer than {MAX_BYTES} bytes; not read"]
    try:
        found = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return {}, [f"executor {index}: {VARIABLE} {CONTAINER_PATH} is not JSON: {exc}"]
    if not isinstance(found, dict):
        return {}, [f"executor {index}: {VARIABLE} {CONTAINER_PATH} holds a JSON {type(found).__name__}, not an object"]
    return _metadata(found, index)


def _metadata(found: dict, index: int) -> tuple[dict[str, str], list[str]]:
    metadata, problems = {}, []
    for key in ("message", "status"):
        if found.get(key) is not None:
            metadata[KEY_PREFIX + key] = _text(found[key])
    metrics = found.get("metrics")
    if metrics is not None and not isinstance(metrics, dict):
        problems.append(f"executor {index}: the metrics in {VARIABLE} are not an object; not read")
    elif metrics:
        for name, value in list(metrics.items())[:MAX_METRICS]:
            metadata[f"{KEY_PREFIX}metric.{name}"] = _text(value)
        if len(metrics) > MAX_METRICS:
            problems.append(f"executor {index}: {VARIABLE} has {len(metrics)} metrics; the first {MAX_METRICS} are kept")
    return metadata, problems


def _text(value: object) -> str:
    """A value as metadata holds it: strings as they are, anything else as its JSON."""
    return value if isinstance(value, str) else json.dumps(value)
