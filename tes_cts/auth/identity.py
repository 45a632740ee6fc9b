"""The caller as the rest of the service sees it, and the outcomes a provider can report."""

from __future__ import annotations

from dataclasses import dataclass, field

ADMIN = "admin"
USER = "user"


@dataclass(frozen=True)
class Identity:
    """`owner` is what tasks record: `<provider>:<name>` (names of different providers never
    meet), or "" for the one local user of the `none` provider. `role_sources` says, for the 403
    message, where each role comes from."""

    owner: str
    roles: frozenset[str]
    role_sources: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    def require(self, role: str, action: str) -> None:
        if role not in self.roles:
            raise RoleMissing(self, role, action)

    @property
    def visible_owner(self) -> str | None:
        """Whose tasks this caller may read and cancel: its own; None (everyone's) for admins."""
        return None if self.is_admin else self.owner

    def list_owner(self, requested: str | None) -> str | None:
        """The owner filter of a list: the caller's own tasks unless an admin asks for one
        owner's (or, by default, everyone's)."""
        if requested is None:
            return self.visible_owner
        if requested != self.owner:
            self.require(ADMIN, "listing another owner's tasks")
        return requested


class CredentialsRejected(Exception):
    """The credential is this provider's and it is wrong (bad password, expired token): 401.
    The message says why and never contains the credential."""


class AuthUnavailable(Exception):
    """The provider cannot decide (its service is unreachable or answers nonsense): 503, never
    "allowed". The message names the service, never the credential."""


class RoleMissing(Exception):
    def __init__(self, identity: Identity, role: str, action: str):
        source = identity.role_sources.get(role)
        hint = f"; the role comes from {source}" if source else ""
        who = identity.owner or "the local user"
        super().__init__(f"{action} needs the role '{role}', which {who} does not have{hint}")
        self.role = role
