"""`none`: no credentials at all; every caller is the one local user, who owns every task
created this way. The owner is "" (the store's owner of tasks made before authentication
existed), so turning authentication off and on never hides or reassigns tasks."""

from __future__ import annotations

from .identity import USER, Identity

LOCAL_USER = Identity(owner="", roles=frozenset({USER}))
