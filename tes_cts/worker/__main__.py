"""`python -m tes_cts.worker JOB_FILE`: one worker as a process of its own. The same as `tes-cts
worker`, without importing the server's modules. (The local backend forks its workers from the
launcher instead, `launcher.py`, so that no attempt pays for this start-up.)"""

import sys

from .run import work

if len(sys.argv) != 2:
    sys.exit("usage: python -m tes_cts.worker JOB_FILE")
sys.exit(work(sys.argv[1]))
