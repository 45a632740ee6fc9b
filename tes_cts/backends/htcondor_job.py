"""`python -m tes_cts.backends.htcondor_job JOB_FILE`: the worker, as an HTCondor job starts it.

HTCondor runs it in the job's scratch directory on the execute node, with the job file
transferred in. Three things differ from a worker the local backend starts:

- the run directory is that scratch directory, not the submit side's directory the job file
  names, so the job file is pointed at it before the worker reads it;
- every user of the pool can read a job's environment, so it carries no S3 secret: it names, in
  TES_CTS_WORKER_S3_SECRET_FILE__<STORE>, a file on the execute node holding the store's secret,
  read here into the variable the worker expects (TES_CTS_WORKER_S3_SECRET_<STORE>);
- HTCondor holds a job when a file it must transfer back is missing, so `logs/` exists from the
  start and a result is written whatever fails here.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from ..clock import now_us, rfc3339
from ..jobfiles import LOGS_DIR, SYSTEM_ERROR, Result, write_json_atomically, write_result
from ..storage.config import SECRET_VARIABLE_PREFIX, secret_variable

SECRET_FILE_PREFIX = SECRET_VARIABLE_PREFIX + "FILE__"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m tes_cts.backends.htcondor_job JOB_FILE", file=sys.stderr)
        return 2
    job_file = Path(argv[1]).resolve()
    run_dir = job_file.parent
    (run_dir / LOGS_DIR).mkdir(exist_ok=True)
    try:
        read_secret_files(os.environ)
    except OSError as exc:
        now = rfc3339(now_us())
        reason = f"cannot read an S3 secret on {socket.gethostname()}: {exc.filename}: {exc.strerror}"
        write_result(run_dir, Result(SYSTEM_ERROR, reason, now, now, system_logs=[reason]))
        return 0
    _point_at(job_file, run_dir)
    from ..worker.run import work

    return work(str(job_file))


def secret_file_variable(store_name: str) -> str:
    return SECRET_FILE_PREFIX + secret_variable(store_name).removeprefix(SECRET_VARIABLE_PREFIX)


def read_secret_files(environ) -> None:
    for name, path in list(environ.items()):
        if name.startswith(SECRET_FILE_PREFIX):
            environ[SECRET_VARIABLE_PREFIX + name.removeprefix(SECRET_FILE_PREFIX)] = Path(path).read_text().strip()


def _point_at(job_file: Path, run_dir: Path) -> None:
    """Make the job file name the scratch directory as the run directory; a job file that cannot
    be read is left for the worker to report."""
    try:
        raw = json.loads(job_file.read_text())
    except (OSError, ValueError):
        return
    if isinstance(raw, dict):
        raw["run_dir"] = str(run_dir)
        write_json_atomically(job_file, raw)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
