"""http:// and https:// URLs, for inputs only: HEAD for stat, a streamed GET for get.

Not verified: a web server keeps no checksum preflight could record (`expected` is ignored).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, urlsplit

import requests
import urllib3

from ..urls import without_password
from .atomic import atomic_file
from .base import ObjectInfo, Storage, StorageError, check_relative
from .checksums import CHUNK_BYTES
from .http_addresses import AddressPolicy, guarded_session, refusal_in
from .scheme import INPUTS_ONLY, SchemeInfo, UrlUse

# Ask for the bytes as stored: a server must not re-encode them (gzip) on the way.
_HEADERS = {"Accept-Encoding": "identity"}
_CHECKSUM_HEADER = "x-amz-checksum-crc64nvme"  # S3-compatible servers answer with it
_NAMES_ONE_FILE = "an http(s) URL names one file; a DIRECTORY input needs a file:// or s3:// URL"


def _url_problems(url: str, use: UrlUse) -> list[str]:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        return [f"is not a valid URL ({exc})"]
    if not parts.hostname:
        return ["needs a host: http(s)://host/path"]
    refusal = AddressPolicy(use.http_allow).host_refusal(parts.hostname)
    return [refusal] if refusal else []


HTTP = SchemeInfo("http", "http://host/path", INPUTS_ONLY, _url_problems)
HTTPS = SchemeInfo("https", "https://host/path", INPUTS_ONLY, _url_problems)


class HttpStorage(Storage):
    def __init__(self, http_allow: tuple[str, ...] = (), connect_timeout: float = 10.0, read_timeout: float = 60.0):
        """Only public addresses are reached, and those `http_allow` opens (http_addresses)."""
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._session = guarded_session(AddressPolicy(http_allow))

    def stat(self, url: str) -> ObjectInfo:
        with self._request(url, "HEAD") as response:
            length = response.headers.get("Content-Length")
            size = int(length) if length and length.isdigit() else -1
            return ObjectInfo(size, False, response.headers.get(_CHECKSUM_HEADER))

    def list(self, url: str) -> list[str]:
        raise StorageError(without_password(url), _NAMES_ONE_FILE)

    def get(self, url: str, dest: Path, is_dir: bool, expected: list[dict] | None = None) -> int:
        if is_dir:
            raise StorageError(without_password(url), _NAMES_ONE_FILE)
        written = 0
        try:
            with self._request(url, "GET") as response:
                length = response.headers.get("Content-Length")
                expected = int(length) if length and length.isdigit() else None
                with atomic_file(Path(dest), durable=False) as handle:
                    for chunk in response.iter_content(CHUNK_BYTES):
                        handle.write(chunk)
                        written += len(chunk)
                    if expected is not None and written != expected:
                        raise StorageError(without_password(url), f"the connection ended after {written} of {expected} bytes")
        except requests.RequestException as exc:
            raise StorageError(without_password(url), self._describe(exc)) from None
        except OSError as exc:  # after RequestException, which is an OSError too
            raise StorageError(without_password(url), f"cannot write the file: {exc.strerror or type(exc).__name__}") from None
        return written

    def put(self, src: Path, url: str) -> ObjectInfo:
        raise StorageError(without_password(url), "http(s) URLs are accepted for inputs only")

    def join(self, url: str, relative: str) -> str:
        check_relative(url, relative)
        return (url if url.endswith("/") else url + "/") + quote(relative)

    def _request(self, url: str, method: str) -> requests.Response:
        """The response to a 2xx request (redirects followed), streamed; StorageError otherwise."""
        try:
            response = self._session.request(
                method, url, headers=_HEADERS, stream=True, allow_redirects=True,
                timeout=(self.connect_timeout, self.read_timeout),
            )
        except requests.RequestException as exc:
            raise StorageError(without_password(url), self._describe(exc)) from None
        if not 200 <= response.status_code < 300:
            response.close()
            raise StorageError(without_password(url), f"the server answered {method} with HTTP {response.status_code} {response.reason or ''}".rstrip())
        return response

    def _describe(self, exc: requests.RequestException) -> str:
        refused = refusal_in(exc)
        if refused is not None:  # also after a redirect: said the same way, nothing of what listens
            return str(refused)
        if isinstance(exc, requests.ConnectTimeout):
            return f"no connection within {self.connect_timeout:g} s"
        # Mid-body, requests reports a read timeout as a ConnectionError wrapping urllib3's.
        timed_out = exc.args and isinstance(exc.args[0], urllib3.exceptions.ReadTimeoutError)
        if isinstance(exc, requests.ReadTimeout) or timed_out:
            return f"the server sent nothing for {self.read_timeout:g} s"
        if isinstance(exc, requests.exceptions.ChunkedEncodingError):
            return f"the connection broke off before the whole file arrived ({_detail(exc)})"
        if isinstance(exc, requests.ConnectionError):
            return f"cannot connect: {_detail(exc)}"
        if isinstance(exc, requests.TooManyRedirects):
            return "too many redirects"
        return f"request failed: {_detail(exc)}"


def _detail(exc: BaseException) -> str:
    """The innermost cause's message: requests wraps urllib3's errors two or three deep."""
    for _ in range(5):  # bounded: a cause could point back at itself
        inner = exc.args[0] if exc.args else None
        if isinstance(inner, BaseException):
            exc = inner
        elif isinstance(getattr(exc, "reason", None), BaseException):
            exc = exc.reason
        else:
            break
    text = inner if isinstance(inner, str) else str(exc)
    return re.sub(r"^HTTPS?Connection(Pool)?\(.*?\): ", "", text)

