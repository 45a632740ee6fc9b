"""Which addresses a user's http(s) URL may reach: by default only public ones.

A task's URL must not reach the service's own network: not loopback (its own API), not link-local
(169.254.169.254, a cloud's metadata service), not private, shared, reserved or unspecified
addresses, in any spelling (`127.1`, `2130706433`, `[::ffff:127.0.0.1]`, a name that resolves
there). The setting `storage.http_allow` opens chosen host names and networks.

The check is made where the connection is made: the name is resolved once, every address it
resolves to must be allowed, and the connection goes to an address that was checked (a name
cannot resolve to a public address for the check and to a private one for the connection). A
redirect is a new connection, checked again. A refused address is refused before any packet is
sent to it, so the answer says nothing of what listens there.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Iterable

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.connection import create_connection

from ..causes import causes

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
REFUSED = ("is not reachable from this service: it is a loopback, private, link-local or otherwise "
           "non-public address (setting storage.http_allow opens chosen hosts and networks)")


class AddressRefused(OSError):
    """A URL's host is, or resolves to, an address the policy refuses."""


class AddressPolicy:
    def __init__(self, allowed: Iterable[str] = ()):
        """`allowed`: host names (any address they resolve to) and networks (`10.1.0.0/16`, an
        address alone), from the setting storage.http_allow."""
        self.hosts: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allowed:
            network = allowed_network(entry)
            if network is None:
                self.hosts.add(entry.lower().rstrip("."))
            else:
                self.networks.append(network)

    def host_refusal(self, host: str) -> str | None:
        """Why a URL's host is refused without resolving it (a literal address), else None."""
        address = literal_address(host)
        if address is None or self.allows(host, address):
            return None
        return f"host {host} {REFUSED}"

    def checked_addresses(self, host: str, port: int) -> list[tuple]:
        """getaddrinfo's answers for `host`, all of them allowed; AddressRefused if one is not."""
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        for *_, sockaddr in infos:
            if not self.allows(host, ipaddress.ip_address(sockaddr[0].split("%", 1)[0])):
                raise AddressRefused(f"host {host} {REFUSED}")
        return infos

    def allows(self, host: str, address: Address) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        plain = _unmapped(address)
        if any(plain in network for network in self.networks):
            return True
        return plain.is_global and not plain.is_multicast


def allowed_network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The network an allow-list entry names, None if it names a host."""
    try:
        return ipaddress.ip_network(entry.strip("[]"), strict=False)
    except ValueError:
        return None


def literal_address(host: str) -> Address | None:
    """The address a URL's host spells out, in any form a resolver reads (`127.1`, `0x7f.1`,
    `2130706433`, `[::1]`), or None for a name."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except OSError:
        return None


def guarded_session(policy: AddressPolicy) -> requests.Session:
    """A session whose every connection (redirects too) goes only where `policy` allows; proxy
    variables are not read: a proxy would connect anywhere on the session's behalf."""
    session = requests.Session()
    session.trust_env = False
    adapter = _GuardedAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def refusal_in(exc: BaseException) -> AddressRefused | None:
    """The AddressRefused under a requests or urllib3 error, if that is what it is."""
    return next((cause for cause in causes(exc) if isinstance(cause, AddressRefused)), None)


def _unmapped(address: Address) -> Address:
    return address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped else address


class _GuardedConnection:
    """Mixed into urllib3's connections: the socket goes to a checked address of the host."""

    policy: AddressPolicy

    def _new_conn(self) -> socket.socket:
        last_error: OSError | None = None
        for *_, sockaddr in self.policy.checked_addresses(self._dns_host, self.port):
            try:
                return create_connection((sockaddr[0], self.port), self.timeout,
                                         source_address=self.source_address, socket_options=self.socket_options)
            except OSError as exc:
                last_error = exc
        raise urllib3.exceptions.NewConnectionError(self, f"Failed to establish a new connection: {last_error}")


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, policy: AddressPolicy):
        self._policy = policy
        super().__init__()

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        policy = self._policy
        http_connection = type("GuardedHTTPConnection", (_GuardedConnection, HTTPConnection), {"policy": policy})
        https_connection = type("GuardedHTTPSConnection", (_GuardedConnection, HTTPSConnection), {"policy": policy})
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_connection}),
            "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_connection}),
        }
