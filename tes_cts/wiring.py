"""Building the running parts (backend, poller) from settings: the one place that knows both."""

from __future__ import annotations

from .backends.base import Backend
from .poller import Poller, PollerConfig
from .store.base import TaskStore
from .tasks.durations import parse_duration
from .worker.job import ContainerSettings


def container_settings(settings) -> ContainerSettings:
    containers = settings.containers
    return ContainerSettings(
        runtime=containers.runtime,
        network=containers.network,
        no_new_privileges=containers.no_new_privileges,
        cap_drop=tuple(containers.cap_drop),
        pull=containers.pull,
        extra_args=tuple(containers.extra_args),
        log_tail_bytes=containers.log_tail_bytes,
    )


def open_backend(settings) -> Backend:
    if settings.backend.kind == "local":
        from .backends.local import LocalBackend

        return LocalBackend(settings.work_dir, settings.local.cpu_slots, settings.local.ram_gb,
                            container_settings(settings))
    raise ValueError(f"unknown backend {settings.backend.kind!r}")


def poller_config(settings) -> PollerConfig:
    poller = settings.poller
    limit = settings.containers.runtime_limit
    return PollerConfig(
        interval_s=float(poller.interval_s),
        lease_s=float(poller.lease_s),
        max_attempts=poller.max_attempts,
        batch_size=poller.batch_size,
        engine_wait_s=float(poller.engine_wait_s),
        runtime_limit_s=parse_duration(limit) if limit else None,
        containers=container_settings(settings),
        file_roots=tuple(settings.storage.file_roots),
    )


def build_poller(settings, store: TaskStore) -> Poller:
    return Poller(store, open_backend(settings), poller_config(settings))
