"""Where the processes of one service put their metrics: `<work_dir>/metrics`, one set of files
per process, merged by every scrape (prometheus_client's multiprocess mode).

prometheus_client decides when it is imported whether values go to memory or to those files, by
the variable PROMETHEUS_MULTIPROC_DIR. So each command sets it before anything counts:
`serve` in its master, before it starts the poller and forks the gunicorn workers (who inherit
it), and cleans the directory; `tes-cts poller` run alone sets the same directory and keeps
what is there. A worker of a task inherits nothing of it (backends/local.py passes workers only
the variables they need) and counts nothing.

This module does not import prometheus_client: it runs before it may be.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
DIRECTORY = "metrics"
# prometheus_client names each process's file <kind>_<pid>.db (counter_12, gauge_livesum_12, ...).
_FILE_PID = re.compile(r"_(\d+)\.db$")


def metrics_dir(work_dir: str | os.PathLike) -> Path:
    return Path(work_dir).resolve() / DIRECTORY


def share_across_processes(work_dir: str | os.PathLike, fresh: bool) -> Path:
    """Make this process (and the processes it starts) count into `<work_dir>/metrics`. `fresh`
    (serve's start) first removes the files of processes that have ended, so that the counts
    start again with the service while those of a `tes-cts poller` still running on the same
    work dir are kept. Raises RuntimeError if prometheus_client was imported before: its values
    would stay in this process's memory."""
    path = metrics_dir(work_dir)
    if "prometheus_client" in sys.modules and os.environ.get(VARIABLE) != str(path):
        raise RuntimeError("prometheus_client was imported before the metrics directory was chosen; "
                           "its values would not reach /metrics")
    path.mkdir(parents=True, exist_ok=True)
    if fresh:
        remove_files_of_ended_processes(path)
    os.environ[VARIABLE] = str(path)
    return path


def remove_files_of_ended_processes(path: Path) -> list[Path]:
    """The files removed: those whose process is no longer running."""
    removed = []
    for file in path.glob("*.db"):
        match = _FILE_PID.search(file.name)
        if match and not _running(int(match.group(1))):
            file.unlink(missing_ok=True)
            removed.append(file)
    return removed


def process_ended(pid: int) -> None:
    """What serve's master does when a gunicorn worker exits: its live gauges go with it."""
    if os.environ.get(VARIABLE):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process holds that pid now
        return True
    return True
