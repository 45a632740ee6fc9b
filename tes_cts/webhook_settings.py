"""The webhooks the setting `events.webhooks` lists, checked (webhooks.py sends to them). Apart
from the sending, so that checking settings loads no store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .durations import parse_duration


@dataclass(frozen=True)
class Webhook:
    name: str                  # the cursor's name in the store: keep it when the URL changes
    url: str
    secret: str = ""
    give_up_after_s: float = 86_400.0


def webhooks_of(entries: list) -> tuple[Webhook, ...]:
    """The webhooks the setting `events.webhooks` lists: each a table with `url` (http or https),
    and optionally `name` (default: the URL), `secret` or `secret_file`, `give_up_after` (ISO 8601
    or seconds). Raises ValueError saying which entry is wrong and why."""
    found: dict[str, Webhook] = {}
    for index, entry in enumerate(entries):
        where = f"events.webhooks[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise ValueError(f"{where} must be a table with a url, got {entry!r}")
        unknown = set(entry) - {"name", "url", "secret", "secret_file", "give_up_after"}
        if unknown:
            raise ValueError(f"{where} has unknown keys {sorted(unknown)}")
        url = entry["url"]
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ValueError(f"{where}.url must be an http or https URL, got {url!r}")
        name = str(entry.get("name") or url)
        if name in found:
            raise ValueError(f"{where}: a second webhook named {name!r}; give each its own name")
        found[name] = Webhook(name=name, url=url, secret=_secret(entry, where),
                              give_up_after_s=parse_duration(str(entry.get("give_up_after") or "P1D")))
    return tuple(found.values())


def _secret(entry: dict, where: str) -> str:
    if entry.get("secret_file"):
        try:
            return Path(entry["secret_file"]).read_text().strip()
        except OSError as exc:
            raise ValueError(f"{where}.secret_file cannot be read: {exc.strerror or exc}") from None
    return str(entry.get("secret") or "")
