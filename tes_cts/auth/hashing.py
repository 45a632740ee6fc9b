"""Password hashes (scrypt) and token digests (SHA-256), in PHC-style strings.

`$scrypt$ln=14,r=8,p=1$SALT$HASH` for passwords: slow on purpose. `$sha256$HEX` for static bearer
tokens: they are long random strings, so a fast digest is enough and no guess can be tested
offline against it. Both compare in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P = 14, 8, 1
_SALT_BYTES, _KEY_BYTES = 16, 32
_SCRYPT = re.compile(r"^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,})\$([A-Za-z0-9+/]{43})$")
_SHA256 = re.compile(r"^\$sha256\$[0-9a-f]{64}$")
_MAX_MEMORY = 256 * 1024 * 1024


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(_SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P)
    return f"$scrypt$ln={SCRYPT_LOG2_N},r={SCRYPT_R},p={SCRYPT_P}${_b64(salt)}${_b64(key)}"


def is_password_hash(value: object) -> bool:
    match = isinstance(value, str) and _SCRYPT.match(value)
    return bool(match) and 1 <= int(match.group(1)) <= 20 and int(match.group(2)) >= 1 and int(match.group(3)) >= 1


def verify_password(password: str, encoded: str) -> bool:
    log2_n, r, p, salt, expected = _SCRYPT.match(encoded).groups()
    key = _scrypt(password, _unb64(salt), int(log2_n), int(r), int(p))
    return hmac.compare_digest(key, _unb64(expected))


def token_digest(token: str) -> str:
    return "$sha256$" + hashlib.sha256(token.encode()).hexdigest()


def is_token_digest(value: object) -> bool:
    return isinstance(value, str) and bool(_SHA256.match(value))


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=2**log2_n, r=r, p=p, maxmem=_MAX_MEMORY, dklen=_KEY_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))
