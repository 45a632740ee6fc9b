"""`python -m tes_cts.worker JOB_FILE`: what backends start. The same as `tes-cts worker`, without
importing the server's modules (a worker starts once per task; its start-up is task overhead)."""

import sys

from .run import work

if len(sys.argv) != 2:
    sys.exit("usage: python -m tes_cts.worker JOB_FILE")
sys.exit(work(sys.argv[1]))
