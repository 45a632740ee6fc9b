"""Every instrument the service counts with, each named once (Prometheus conventions: a
`tes_cts_` prefix, counters ending in `_total`, durations in `_seconds`, sizes in `_bytes`).

Labels take values from small closed sets (states, phases, operations, schemes, routes), never
a task id or an owner. Only `record.py` imports this module: importing it imports
prometheus_client (see `process.py`)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# The poller's cycle: usually milliseconds, a minute when a store or a backend crawls.
CYCLE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CYCLE_TASK_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
# One attempt's staging by one scheme and direction: from a small file to hours of S3.
STAGING_BUCKETS_S = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

task_transitions = Counter(
    "tes_cts_task_transitions", "Phase changes of tasks, by the phase entered and its TES state",
    ["phase", "state"])

poller_cycle_duration = Histogram(
    "tes_cts_poller_cycle_duration_seconds", "How long a poller cycle took", buckets=CYCLE_BUCKETS_S)
poller_cycle_tasks = Histogram(
    "tes_cts_poller_cycle_tasks", "Tasks one poller cycle handled (cancel requests, tasks a backend "
    "holds, queued tasks)", buckets=CYCLE_TASK_BUCKETS)
poller_cycle_failures = Counter(
    "tes_cts_poller_cycle_failures", "Poller cycles that failed, by reason (store_unavailable, error)", ["reason"])

backend_calls = Counter(
    "tes_cts_backend_calls", "Calls the poller made to its backend, by backend kind and operation",
    ["backend", "operation"])
backend_call_failures = Counter(
    "tes_cts_backend_call_failures", "Backend calls that raised (an engine check: that found a problem)",
    ["backend", "operation"])

staging_bytes = Counter(
    "tes_cts_staging_bytes", "Bytes staged by workers, by URL scheme and direction (input, output)",
    ["scheme", "direction"])
staging_duration = Histogram(
    "tes_cts_staging_duration_seconds", "Time one attempt spent staging by one URL scheme and direction",
    ["scheme", "direction"], buckets=STAGING_BUCKETS_S)
checksum_mismatches = Counter(
    "tes_cts_checksum_mismatches", "CRC64NVME mismatches: inputs whose bytes changed since submission, "
    "outputs the store holds with another checksum", ["scheme", "direction"])

http_requests = Counter(
    "tes_cts_http_requests", "HTTP requests answered, by method, route (the API's path template) and status",
    ["method", "route", "status"])
http_request_duration = Histogram(
    "tes_cts_http_request_duration_seconds", "Time to answer an HTTP request (event streams left out)",
    ["method", "route"])

webhook_deliveries = Counter(
    "tes_cts_webhook_deliveries", "Events a webhook receiver took", ["webhook"])
webhook_delivery_failures = Counter(
    "tes_cts_webhook_delivery_failures", "POSTs to a webhook receiver that failed (each try)", ["webhook"])
