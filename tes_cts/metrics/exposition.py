"""What a scrape of `/metrics` shows: every process's counts (merged from `<work_dir>/metrics`
when the processes share it, else this process's own), and what the task store counts, read at
each scrape: tasks per TES state and each webhook's dead letters. Those are right across
restarts and replicas, and no process keeps them in memory.

prometheus_client is imported at the first scrape, as in `record.py`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Iterator

from ..database.base import DatabaseUnavailable, TaskDatabase
from ..model.states import STATE_OF_PHASE
from .process import VARIABLE
from .record import webhook_label

log = logging.getLogger("tes_cts.metrics")
# The states a task of this service can be in, each shown even at 0.
STATES = tuple(dict.fromkeys(state.value for state in STATE_OF_PHASE.values()))


@dataclass(frozen=True)
class Scrape:
    database: TaskDatabase
    webhooks: tuple[tuple[str, str], ...] = ()   # (name, url) of each configured webhook

    def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type. Reads the store: call it off the event loop."""
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

        registry = CollectorRegistry()
        if os.environ.get(VARIABLE):
            from prometheus_client.multiprocess import MultiProcessCollector

            MultiProcessCollector(registry)
        else:
            registry.register(_Collected(REGISTRY))
        registry.register(_StoreCounts(self.database, self.webhooks))
        return generate_latest(registry), CONTENT_TYPE_LATEST


class _Collected:
    """Another registry's metrics, in this one."""

    def __init__(self, registry):
        self._registry = registry

    def collect(self) -> Iterator:
        yield from self._registry.collect()


class _StoreCounts:
    """What the task store counts. A store that does not answer leaves these out of the scrape
    (the process counts are still shown), and the log says why."""

    def __init__(self, database: TaskDatabase, webhooks: tuple[tuple[str, str], ...]):
        self._database = database
        self._webhooks = webhooks

    def collect(self) -> Iterator:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        try:
            counts = self._database.count_by_state()
            dead_letters = [(webhook_label(name, url), self._database.delivery(name)[1]) for name, url in self._webhooks]
        except DatabaseUnavailable as exc:
            log.warning("metrics: the task store did not answer, its counts are left out: %s", exc)
            return
        tasks = GaugeMetricFamily("tes_cts_tasks", "Tasks in each TES state, as the task store counts them",
                                  labels=["state"])
        for state in STATES:
            tasks.add_metric([state], counts.get(state, 0))
        yield tasks
        if dead_letters:
            dead = CounterMetricFamily("tes_cts_webhook_dead_letters", "Events a webhook gave up on, as the "
                                       "task store counts them", labels=["webhook"])
            for label, count in dead_letters:
                dead.add_metric([label], count)
            yield dead
