"""The poller: drives every task to a terminal state, whatever crashed in between.

Each cycle (`loop.py`) it first applies the cancel requests the API recorded (`cancels.py`), then
reconciles the tasks a backend holds (`reconcile.py`: progress, results, cancels, lost jobs, time
limits), then dispatches queued tasks oldest first (`dispatch.py`). It decides states; backends
only report facts. Every change it makes is one of the named moves of `moves.py`, stored by
compare-and-set, so several pollers can run at once: a claim carries a lease, and a lost race is
re-read and decided again next cycle.
"""

from .config import PollerConfig
from .loop import Poller

__all__ = ["Poller", "PollerConfig"]
