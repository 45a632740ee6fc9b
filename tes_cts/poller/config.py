"""What the poller is told by settings; `wiring.poller_config` builds it (defaults live there)."""

from __future__ import annotations

from dataclasses import dataclass

from ..jobfiles import ContainerSettings
from ..storage.preflight import InputPreflight


@dataclass(frozen=True)
class PollerConfig:
    interval_s: float                   # between cycles
    lease_s: float                      # how long a claim holds against other pollers
    max_attempts: int
    batch_size: int                     # tasks read from the database at a time
    engine_wait_s: float                # 0: queued tasks wait for the engine as long as it takes
    unmatched_wait_s: float             # fail a job no machine can run after this long (0: never)
    runtime_limit_s: float | None       # when a task has no `runtime` parameter (None: no limit)
    run_retention_s: float | None       # finished tasks' run directories go after this long (None: kept)
    event_retention_s: float | None     # events go after this long (None: kept)
    containers: ContainerSettings
    file_roots: tuple[str, ...]
    http_allow: tuple[str, ...]         # storage.http_allow, for the workers' http(s) inputs
    s3_stores: tuple[dict, ...]         # storage.config.public_stores: what a worker may know
    preflight: InputPreflight | None    # None: inputs were checked at create, or nothing to check
