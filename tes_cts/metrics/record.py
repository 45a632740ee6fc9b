"""What the service counts, one function per fact, called where the fact happens.

prometheus_client is imported at the first count, not with this module: the modules that count
are imported before a command has chosen where the values go (`process.py`), and
prometheus_client decides that when it is imported. A count that fails (its file cannot grow on
a full disk) is said in the log and never fails the work it counts.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable, Iterable
from urllib.parse import urlsplit

from ..model.states import STATE_OF_PHASE, Phase
from ..storage.scheme import INPUT, OUTPUT

log = logging.getLogger("tes_cts.metrics")
DIRECTIONS = (INPUT, OUTPUT)
_MAX_LABEL = 32  # a worker's measurement that says more than a scheme is not one


def _instruments():
    from . import instruments

    return instruments


def _never_fails(count: Callable) -> Callable:
    @functools.wraps(count)
    def counting(*args, **kwargs) -> None:
        try:
            count(*args, **kwargs)
        except Exception:
            log.warning("could not count %s", count.__name__, exc_info=True)

    return counting


@_never_fails
def transitions(phases: Iterable[Phase]) -> None:
    """Tasks moved into `phases` (one entry per move, stored)."""
    counter = _instruments().task_transitions
    for phase in phases:
        counter.labels(phase=phase.value, state=STATE_OF_PHASE[phase].value).inc()


@_never_fails
def poller_cycle(seconds: float, tasks: int) -> None:
    instruments = _instruments()
    instruments.poller_cycle_duration.observe(seconds)
    instruments.poller_cycle_tasks.observe(tasks)


@_never_fails
def poller_cycle_failed(reason: str) -> None:
    _instruments().poller_cycle_failures.labels(reason=reason).inc()


@_never_fails
def backend_call(backend: str, operation: str, failed: bool) -> None:
    instruments = _instruments()
    instruments.backend_calls.labels(backend=backend, operation=operation).inc()
    if failed:
        instruments.backend_call_failures.labels(backend=backend, operation=operation).inc()


@_never_fails
def http_request(method: str, route: str, status: int, seconds: float | None) -> None:
    """One answered request; `seconds` None leaves it out of the latency histogram (a stream)."""
    instruments = _instruments()
    instruments.http_requests.labels(method=method, route=route, status=str(status)).inc()
    if seconds is not None:
        instruments.http_request_duration.labels(method=method, route=route).observe(seconds)


@_never_fails
def webhook_post(name: str, url: str, taken: bool) -> None:
    """One POST of an event to the webhook `name` at `url`: taken by the receiver, or failed."""
    instruments = _instruments()
    counter = instruments.webhook_deliveries if taken else instruments.webhook_delivery_failures
    counter.labels(webhook=webhook_label(name, url)).inc()


def webhook_label(name: str, url: str) -> str:
    """How metrics name a webhook: its `name`, or, when it has none (the name is then its URL),
    the URL's scheme, host and port only, since a receiver's URL often holds a secret."""
    if name != url:
        return name
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


@_never_fails
def worker_measurements(measurements: dict) -> None:
    """What a worker measured of its attempt (`jobfiles.Result.measurements`), counted by the
    poller once the result is recorded. The file may come back from another machine: what is
    not in the expected form is left out, said in the log."""
    instruments = _instruments()
    try:
        for entry in measurements.get("staging", []):
            labels = _labels(entry)
            instruments.staging_bytes.labels(**labels).inc(int(entry["bytes"]))
            instruments.staging_duration.labels(**labels).observe(float(entry["seconds"]))
        for entry in measurements.get("checksum_mismatches", []):
            instruments.checksum_mismatches.labels(**_labels(entry)).inc(int(entry["count"]))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        log.warning("a worker's measurements are not in the expected form (%s): %.200r", exc, measurements)


def _labels(entry: dict) -> dict[str, str]:
    scheme, direction = entry["scheme"], entry["direction"]
    if not isinstance(scheme, str) or len(scheme) > _MAX_LABEL or direction not in DIRECTIONS:
        raise ValueError(f"scheme {scheme!r}, direction {direction!r}")
    return {"scheme": scheme, "direction": direction}
