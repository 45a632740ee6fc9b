"""URLs as they may be shown: in messages, logs and task views."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_USERINFO_PASSWORD = re.compile(r"(?<=://)([^:@/]*):[^@/]*@")


def without_password(url: str) -> str:
    """`url` with any password replaced by ***, e.g. `mongodb://u:***@h1,h2/db`."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:  # unparsable (a bad IPv6 literal): still never show what looks like a password
        return _USERINFO_PASSWORD.sub(r"\1:***@", url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
