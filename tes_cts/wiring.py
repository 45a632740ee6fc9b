"""The composition root: builds the running parts (the API app, the backend, the poller, the
storage configuration) from settings and runs the start-up checks of the packages that give
settings their meaning. The one module that knows them all; nothing imports it but the commands
(`cli`, `server`) and the tests.
"""

from __future__ import annotations

import logging
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

from .api.service_info import build_service_info
from .auth.config import check_auth_settings
from .backends import supported_backend_parameters
from .backends.base import Backend
from .backends.metered import MeteredBackend
from .clock import now_us, rfc3339
from .database import open_database
from .database.base import DatabaseUnavailable, TaskDatabase
from .durations import parse_duration
from .jobfiles import ContainerSettings, runs_of
from .metrics.exposition import Scrape
from .model.limits import SIZE_LIMITS, SizeLimits
from .poller import Poller, PollerConfig
from .settings import S3_STORE_KEYS, load_settings, named_s3_stores, sqlite_path
from .settings_error import InvalidSettings, SettingsError
from .storage.base import StorageError
from .storage.config import S3StoreConfig, StorageConfig, public_stores, secret_environment
from .storage.preflight import InputPreflight, preflight_for
from .tasks.service import TaskService
from .tasks.validation import ValidationLimits
from .wakeup import WAKE_FILE, WakeupFifo, notify

if TYPE_CHECKING:
    import connexion


# What the start-up of `serve` and `poller` reports as one line and exit code 2.
STARTUP_ERRORS = (SettingsError, DatabaseUnavailable, StorageError)


def load_checked_settings(overrides: dict | None = None, settings_file=None):
    """What every command starts from: `settings.load_settings` (its own checks of each value),
    then the auth settings checked by `auth`. Raises SettingsError naming the setting."""
    settings = load_settings(overrides, settings_file)
    check_auth_settings(settings)
    return settings


def build_app(settings, database: TaskDatabase | None = None) -> connexion.FlaskApp:
    """The API app over `database`, by default the one the settings name."""
    from .api.app import create_app  # Connexion is slow to import: only where the API is served
    from .api.operational import BackendCheck

    database = database if database is not None else open_database(settings)
    storage = storage_config(settings)
    backend_parameters = supported_backend_parameters(settings.backend.kind)
    service = TaskService(database, _validation_limits(settings, backend_parameters),
                          _preflight_at("create", settings, storage),
                          wake_poller=partial(notify, wake_path(settings)), runs=runs_of(settings.work_dir))
    service_info = build_service_info(settings, storage, backend_parameters, started_at=rfc3339(now_us()))
    # /readyz asks the backend whether it could take work; the API needs it for nothing else,
    # so it is opened at the first question.
    backend = cache(partial(open_backend, settings))
    return create_app(settings, service, service_info,
                      backend=BackendCheck(settings.backend.kind, lambda: backend().engine_problem()),
                      scrape=_scrape(settings, database) if settings.metrics.enabled else None)


def _scrape(settings, database: TaskDatabase) -> Scrape:
    """/metrics over `database`, with the dead letters of each configured webhook."""
    from .webhook_settings import webhooks_of

    webhooks = webhooks_of(list(settings.events.webhooks))
    return Scrape(database, tuple((webhook.name, webhook.url) for webhook in webhooks))


def _validation_limits(settings, backend_parameters: tuple[str, ...]) -> ValidationLimits:
    return ValidationLimits(
        content_max_bytes=settings.tasks.content_max_bytes,
        file_roots=tuple(settings.storage.file_roots),
        supported_backend_parameters=frozenset(backend_parameters),
        http_allow=tuple(settings.storage.http_allow),
        sizes=SizeLimits(**{name: settings.tasks[f"max_{name}"] for name in SIZE_LIMITS}),
    )


def _preflight_at(moment: str, settings, storage: StorageConfig) -> InputPreflight | None:
    """The check of url inputs for `moment`, "create" (the API) or "dispatch" (the poller): only
    the one s3.verify_inputs names runs it."""
    return preflight_for(storage) if settings.s3.verify_inputs == moment else None


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
        default_disk_gb=float(containers.default_disk_gb),
    )


def storage_config(settings) -> StorageConfig:
    """File roots and S3 stores: the top-level s3 section is the store named "default" (when it
    has an endpoint); each s3.stores.NAME serves the buckets it lists and takes any key it does
    not set from the top-level section."""
    top = {key: settings.s3[key] for key in S3_STORE_KEYS}
    named = {"default": top} if top["endpoint_url"] else {}
    named.update({name: {**top, **store} for name, store in named_s3_stores(settings).items()})
    stores = tuple(
        S3StoreConfig(
            name=name,
            endpoint_url=store["endpoint_url"],
            region=store["region"],
            access_key_id=store["access_key_id"],
            secret_access_key=_secret(name, store),
            verify_tls=bool(store["verify_tls"]),
            buckets=tuple(store["buckets"]),
            key_prefixes=tuple(store["key_prefixes"]),
            multipart_threshold_bytes=settings.s3.multipart_threshold_bytes,
            max_attempts=settings.s3.max_attempts,
        )
        for name, store in named.items()
    )
    return StorageConfig(file_roots=tuple(settings.storage.file_roots), s3_stores=stores,
                         http_allow=tuple(settings.storage.http_allow),
                         preflight_concurrency=settings.s3.preflight_concurrency)


def _secret(name: str, store: dict) -> str:
    path = store.get("secret_access_key_file")
    if not path:
        return store["secret_access_key"]
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        setting = "s3.secret_access_key_file" if name == "default" else f"s3.stores.{name}.secret_access_key_file"
        raise InvalidSettings(f"{setting}: cannot read {path}: {exc.strerror}") from None


def open_backend(settings) -> Backend:
    if settings.backend.kind == "local":
        from .backends.local import LocalBackend

        return LocalBackend(settings.work_dir, settings.local.cpu_slots, settings.local.ram_gb,
                            container_settings(settings),
                            worker_environment=secret_environment(storage_config(settings)),
                            wake_path=wake_path(settings), min_free_gb=float(settings.local.min_free_gb),
                            watched_paths=_store_paths(settings))
    if settings.backend.kind == "htcondor":
        from .backends.htcondor import HTCondorBackend, locate_schedd

        condor = settings.htcondor
        return HTCondorBackend(settings.work_dir, htcondor_template(settings),
                               schedd=locate_schedd(condor.schedd_name, condor.collector),
                               transient_hold_codes=condor.transient_hold_codes,
                               lost_grace_s=parse_duration(condor.lost_job_grace))
    raise ValueError(f"unknown backend {settings.backend.kind!r}")


def htcondor_template(settings):
    """What every HTCondor job of this service shares. A job's environment is readable by every
    user of the pool, so S3 secrets reach workers as files on the execute nodes
    (htcondor.s3_secret_files), never as values."""
    from .backends.htcondor_description import JobTemplate, condor_environment, expression
    from .backends.htcondor_job import secret_file_variable

    condor = settings.htcondor
    files = {str(name).lower(): str(path) for name, path in dict(condor.s3_secret_files).items()}
    environment = {str(name): str(value) for name, value in dict(condor.worker_environment).items()}
    for store in storage_config(settings).s3_stores:
        if store.secret_access_key and store.name not in files:
            raise InvalidSettings(f"htcondor.s3_secret_files.{store.name}: the S3 store {store.name!r} has a secret key, "
                                  "and HTCondor workers read it from a file on the execute nodes: name that file here")
        if store.name in files:
            environment[secret_file_variable(store.name)] = files[store.name]
    try:
        requirements = expression(condor.requirements, "htcondor.requirements") if condor.requirements.strip() else ""
    except ValueError as exc:
        raise InvalidSettings(str(exc)) from None
    try:
        condor_environment(environment)
    except ValueError as exc:
        raise InvalidSettings(f"htcondor.worker_environment: {exc}") from None
    return JobTemplate(service_id=settings.service.id, worker_command=tuple(condor.worker_command),
                       environment=environment, requirements=requirements,
                       accounting_group=condor.accounting_group, concurrency_limit=condor.concurrency_limit)


def poller_config(settings) -> PollerConfig:
    poller = settings.poller
    limit = settings.containers.runtime_limit
    storage = storage_config(settings)
    return PollerConfig(
        interval_s=float(poller.interval_s),
        lease_s=float(poller.lease_s),
        max_attempts=poller.max_attempts,
        batch_size=poller.batch_size,
        engine_wait_s=float(poller.engine_wait_s),
        unmatched_wait_s=_seconds_or_zero(settings.htcondor.unmatched_timeout),
        runtime_limit_s=parse_duration(limit) if limit else None,
        run_retention_s=parse_duration(poller.run_retention) if poller.run_retention else None,
        event_retention_s=parse_duration(poller.event_retention) if poller.event_retention else None,
        containers=container_settings(settings),
        file_roots=tuple(settings.storage.file_roots),
        http_allow=tuple(settings.storage.http_allow),
        s3_stores=tuple(public_stores(storage)),
        preflight=_preflight_at("dispatch", settings, storage),
    )


def _seconds_or_zero(duration: str) -> float:
    return parse_duration(duration) if duration else 0.0


def check_storage(settings) -> None:
    """At start: the backend can hand every store's secret to its workers, and every configured
    S3 store answers with the given credentials."""
    from .storage import check_s3_stores

    if settings.backend.kind == "htcondor":
        htcondor_template(settings)  # also checks the other htcondor.* settings it reads
    config = storage_config(settings)
    if config.s3_stores:
        check_s3_stores(config)


def build_poller(settings, database: TaskDatabase) -> Poller:
    return Poller(database, MeteredBackend(open_backend(settings)), poller_config(settings), wakeups=_wakeups(settings))


def build_webhook_senders(settings, database: TaskDatabase) -> list:
    """One sender per webhook of `events.webhooks` (webhooks.py), run beside the poller."""
    from .webhook_settings import webhooks_of
    from .webhooks import WebhookSender

    return [WebhookSender(database, webhook, source=settings.service.id) for webhook in webhooks_of(list(settings.events.webhooks))]


def _store_paths(settings) -> tuple[str, ...]:
    """Where the task store writes, when it is on this host (SQLite): its directory."""
    return (str(Path(sqlite_path(settings)).resolve().parent),) if settings.database.kind == "sqlite" else ()


def wake_path(settings) -> str:
    """The FIFO the poller of this work dir waits on between cycles (wakeup.py)."""
    return str(Path(settings.work_dir).resolve() / WAKE_FILE)


def _wakeups(settings) -> WakeupFifo | None:
    try:
        return WakeupFifo(wake_path(settings))
    except OSError as exc:  # a file system without FIFOs: the poller still runs every interval
        logging.getLogger("tes_cts.poller").warning("cannot wait on %s (%s): a cycle every poller.interval_s only",
                                                    wake_path(settings), exc)
        return None
