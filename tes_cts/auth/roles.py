"""From a provider's user name and external roles (KBase custom roles, OIDC groups) to an
Identity with the service's roles, as settings say."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .identity import ADMIN, USER, Identity


@dataclass(frozen=True)
class RoleMap:
    provider: str
    admins: frozenset[str]  # owners named in auth.admins
    admin_roles: frozenset[str] = frozenset()  # external roles that make an admin
    user_roles: frozenset[str] = frozenset()  # external roles that allow submitting; empty: everyone
    external_label: str = ""  # how the provider calls its roles, for messages

    def identity(self, name: str, external_roles: Iterable[str] = ()) -> Identity:
        owner = f"{self.provider}:{name}"
        held = set(external_roles)
        roles = set()
        if owner in self.admins or self.admin_roles & held:
            roles |= {ADMIN, USER}
        if not self.user_roles or self.user_roles & held:
            roles.add(USER)
        return Identity(owner, frozenset(roles), self._sources())

    def _sources(self) -> dict[str, str]:
        admin = "the setting auth.admins"
        if self.admin_roles:
            admin += f" or the {self.external_label}: {_listed(self.admin_roles)}"
        sources = {ADMIN: admin}
        if self.user_roles:
            sources[USER] = f"the {self.external_label}: {_listed(self.user_roles)} (or being an admin)"
        return sources


def _listed(names: frozenset[str]) -> str:
    return ", ".join(sorted(names))
