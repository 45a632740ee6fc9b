"""Failed password checks, counted per client address and per user name at that address, so that
passwords cannot be guessed at speed.

The first FREE_FAILURES failures of a key in a row cost nothing more. After them each failure
makes the next attempt of that key wait, from FIRST_DELAY_S doubling up to MAX_DELAY_S; an
attempt that comes earlier is answered 429 with Retry-After, without checking the password (and
without spending the CPU its hash costs). A success forgets the pair; FORGET_AFTER_S without a
failure forgets a key. A user name is never throttled alone: an attacker elsewhere cannot lock
its owner out, and the owner's own address stays heard.

Each API process counts for itself (gunicorn workers do not share counts).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from .cache import TtlCache, credential_key

FREE_FAILURES = 5
FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
FORGET_AFTER_S = 900.0


class TooManyFailures(Exception):
    def __init__(self, retry_after_s: float):
        super().__init__(f"too many failed sign-ins from this address; retry in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class _Failures:
    count: int
    heard_again_at: float                  # on the throttle's clock


class FailureThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._failures: TtlCache[_Failures] = TtlCache(FORGET_AFTER_S, clock=clock)

    def check(self, user: str, address: str) -> None:
        """Raises TooManyFailures while the address, or the user name at it, must wait."""
        now = self._clock()
        wait_s = max((failures.heard_again_at - now for key in _keys(user, address)
                      if (failures := self._failures.get(key)) is not None), default=0.0)
        if wait_s > 0:
            raise TooManyFailures(wait_s)

    def failed(self, user: str, address: str) -> None:
        for key in _keys(user, address):
            count = (self._failures.get(key) or _Failures(0, 0.0)).count + 1
            delay_s = 0.0 if count <= FREE_FAILURES else min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** (count - FREE_FAILURES - 1))
            self._failures.put(key, _Failures(count, self._clock() + delay_s))

    def succeeded(self, user: str, address: str) -> None:
        self._failures.put(_keys(user, address)[1], _Failures(0, 0.0))


def _keys(user: str, address: str) -> tuple[str, str]:
    """The address's key and the pair's, neither holding the name in the clear."""
    return credential_key("address", address), credential_key("user at address", user, address)
