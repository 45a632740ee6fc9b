"""Identity services on loopback for the auth tests: an OIDC issuer (discovery, JWKS, key
rotation, token minting) and a KBase auth2 service, each a real HTTP server in a thread."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "tes-cts-test"


class LoopbackServer:
    """Answers GET requests with `route(path, headers) -> (status, json body)`; records the
    Authorization headers it receives."""

    def __init__(self, route):
        self.route = route
        self.authorizations: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.headers.get("Authorization"):
                    outer.authorizations.append(self.headers["Authorization"])
                status, body = outer.route(self.path, self.headers)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class OidcIssuer:
    """Publishes its signing keys; `rotate()` replaces them with a new key under a new kid."""

    def __init__(self):
        self.server = LoopbackServer(self._route)
        self.issuer = self.server.url
        self.jwks_fetches = 0
        self._generation = 0
        self.key, self.kid = self._new_key()

    def _new_key(self):
        self._generation += 1
        return rsa.generate_private_key(public_exponent=65537, key_size=2048), f"key-{self._generation}"

    def rotate(self):
        self.key, self.kid = self._new_key()

    def _route(self, path, _headers):
        if path == "/.well-known/openid-configuration":
            return 200, {"issuer": self.issuer, "jwks_uri": self.issuer + "/jwks"}
        if path == "/jwks":
            self.jwks_fetches += 1
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
            return 200, {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}
        return 404, {"error": "not found"}

    def token(self, sub: str, *, audience=AUDIENCE, expires_in=300, issuer=None, groups=(), key="own",
              kid=None, algorithm="RS256", **claims) -> str:
        now = int(time.time())
        payload = {"iss": issuer or self.issuer, "sub": sub, "aud": audience, "iat": now,
                   "exp": now + expires_in, "groups": list(groups), **claims}
        key = self.key if key == "own" else key
        return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid or self.kid})

    @staticmethod
    def foreign_key():
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @staticmethod
    def foreign_ec_key():
        return ec.generate_private_key(ec.SECP256R1())

    def close(self):
        self.server.close()


class KBaseAuth:
    """`GET /api/V2/me` as KBase auth2 answers it; `users` maps token -> (user, custom roles);
    `failing` makes it answer 500 like a broken deployment."""

    def __init__(self, users: dict[str, tuple[str, list[str]]]):
        self.users = dict(users)
        self.failing = False
        self.me_calls = 0
        self.server = LoopbackServer(self._route)
        self.url = self.server.url + "/services/auth"

    def _route(self, path, headers):
        if path != "/services/auth/api/V2/me":
            return 404, {"error": {"httpcode": 404, "message": "not found"}}
        self.me_calls += 1
        if self.failing:
            return 500, {"error": {"httpcode": 500, "message": "database down"}}
        found = self.users.get(headers.get("Authorization", ""))
        if found is None:
            return 401, {"error": {"httpcode": 401, "httpstatus": "Unauthorized", "appcode": 10020,
                                   "apperror": "Invalid token", "message": "10020 Invalid token"}}
        user, roles = found
        return 200, {"user": user, "display": user.title(), "customroles": roles, "roles": [],
                     "created": 0, "lastlogin": 0, "idents": []}

    def close(self):
        self.server.close()


def toml_table(entries: dict[str, str]) -> str:
    """A TOML inline table for a TES_CTS_* variable: {alice = "...", bob = "..."}."""
    return "{" + ", ".join(f'"{name}" = "{value}"' for name, value in entries.items()) + "}"


def basic_auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
