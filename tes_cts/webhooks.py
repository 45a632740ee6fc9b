"""Webhooks: every event (model/events.py) POSTed to each configured URL as a CloudEvents 1.0
JSON document, at least once, in order.

The store is the outbox: an event exists as soon as its state change is stored (the same
write), and each webhook's cursor (`TaskDatabase.delivery`) says how far it got. A sender thread
per webhook, in the poller's process but apart from its cycle, POSTs the events after its cursor
one at a time and moves the cursor past each one the receiver took (any 2xx). A receiver that
fails or does not answer is asked again after 1, 2, 4 ... up to MAX_BACKOFF_S seconds, the same
event, for as long as `give_up_after` says; then that event counts as a dead letter and the next
one goes. A new webhook starts with the events from its first start on.

With a `secret`, each POST carries `X-Tes-Cts-Signature-256: sha256=<HMAC-SHA256 of the body, hex>`.
The CloudEvents `id` is `<source>/<event number>`: a receiver that gets one twice (a sender that
stopped between the POST and the cursor's write) can tell.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass

import requests

from .database.base import DatabaseUnavailable, TaskDatabase
from .metrics import record as metrics
from .model.events import EventQuery, TaskEvent
from .model.views import JSON_SEPARATORS
from .webhook_settings import Webhook

log = logging.getLogger("tes_cts.webhooks")

EVENT_TYPE = "org.ga4gh.tes.task.state_changed"
CONTENT_TYPE = "application/cloudevents+json"
SIGNATURE_HEADER = "X-Tes-Cts-Signature-256"
POST_TIMEOUT_S = 10.0
MAX_BACKOFF_S = 60.0
IDLE_WAIT_S = 0.5
BATCH = 100


@dataclass
class DeliveryCounts:
    """What a sender did, for the metrics: POSTs taken, POSTs failed, events given up on."""

    delivered: int = 0
    failed: int = 0
    dead_letters: int = 0


def cloud_event(event: TaskEvent, source: str) -> bytes:
    """The event as a structured-mode CloudEvents 1.0 JSON document."""
    return json.dumps({
        "specversion": "1.0",
        "type": EVENT_TYPE,
        "source": source,
        "id": f"{source}/{event.seq}",
        "time": event.time,
        "subject": event.task_id,
        "datacontenttype": "application/json",
        "data": event.data(),
    }, separators=JSON_SEPARATORS).encode()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    def __init__(self, database: TaskDatabase, webhook: Webhook, source: str,
                 session: requests.Session | None = None, clock=time.monotonic):
        self.database = database
        self.webhook = webhook
        self.source = source
        self.counts = DeliveryCounts()
        self._session = session or requests.Session()
        self._session.trust_env = False  # the operator's URL, reached directly
        self._clock = clock

    def run(self, stop: threading.Event) -> None:
        log.info("webhook %s: delivering events to %s", self.webhook.name, self.webhook.url)
        while not stop.is_set():
            try:
                if not self.deliver_some(stop):
                    stop.wait(IDLE_WAIT_S)
            except DatabaseUnavailable as exc:
                log.warning("webhook %s: store unavailable, retrying: %s", self.webhook.name, exc)
                stop.wait(MAX_BACKOFF_S / 4)

    def deliver_some(self, stop: threading.Event) -> bool:
        """The events after the cursor, each until taken or given up on; whether there were any."""
        after, _ = self.database.delivery(self.webhook.name)
        if after is None:  # a new webhook: from now on
            self.database.record_delivery(self.webhook.name, self.database.last_event_seq())
            return False
        events = self.database.events(EventQuery(after=after, limit=BATCH))
        for event in events:
            if stop.is_set():
                break
            taken = self._deliver(event, stop)
            if taken is None:  # stopped while waiting to ask again: this event is still due
                break
            self.database.record_delivery(self.webhook.name, event.seq, dead_letter=not taken)
        return bool(events)

    def _deliver(self, event: TaskEvent, stop: threading.Event) -> bool | None:
        """True once the receiver took it, False when given up on, None if stopped first."""
        body = cloud_event(event, self.source)
        headers = {"Content-Type": CONTENT_TYPE}
        if self.webhook.secret:
            headers[SIGNATURE_HEADER] = signature(self.webhook.secret, body)
        first_try, backoff = self._clock(), 1.0
        while True:
            problem = self._post(body, headers)
            metrics.webhook_post(self.webhook.name, self.webhook.url, taken=problem is None)
            if problem is None:
                self.counts.delivered += 1
                return True
            self.counts.failed += 1
            if self._clock() - first_try >= self.webhook.give_up_after_s:
                self.counts.dead_letters += 1
                log.error("webhook %s: gave up on event %d (task %s) after %g s: %s", self.webhook.name, event.seq,
                          event.task_id, self.webhook.give_up_after_s, problem)
                return False
            log.warning("webhook %s: event %d not taken (%s); again in %g s", self.webhook.name, event.seq, problem, backoff)
            if stop.wait(backoff):
                return None
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _post(self, body: bytes, headers: dict) -> str | None:
        """None if the receiver took it, else what went wrong."""
        try:
            answer = self._session.post(self.webhook.url, data=body, headers=headers, timeout=POST_TIMEOUT_S)
        except requests.RequestException as exc:
            return type(exc).__name__
        return None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"
