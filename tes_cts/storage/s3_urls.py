"""s3://bucket/key URLs: what one must look like (`S3`, the scheme's declaration) and its bucket
and key (`parse_s3_url`). No boto3 here, so validation can ask without loading it: `s3.py` talks
to the stores.
"""

from __future__ import annotations

import re

from ..quoting import quoted
from .base import StorageError
from .scheme import INPUTS_AND_OUTPUTS, SchemeInfo, UrlUse

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+\Z")
_KEY_MAX_BYTES = 1024


def _bucket_and_key(url: str) -> tuple[str, str]:
    bucket, _, key = url[len("s3://"):].partition("/")
    return bucket, key


def _url_problems(url: str, use: UrlUse) -> list[str]:
    bucket, key = _bucket_and_key(url)
    problems = []
    if "@" in bucket:  # never quoted: what is before the @ is most likely a secret
        problems.append("carries credentials (name:secret@): an s3 URL is s3://bucket/key, and the "
                        "store's credentials are the operator's (settings s3.stores)")
    elif not _BUCKET.match(bucket) or ".." in bucket or _IP_ADDRESS.match(bucket):
        problems.append(
            f"bucket name {quoted(bucket)} is not valid: 3-63 lower-case letters, digits, '.' and '-', "
            "beginning and ending with a letter or digit, no '..', not like an IP address"
        )
    if not key and not use.directory:
        problems.append("needs an object key after the bucket: s3://bucket/key (an empty key only names a DIRECTORY)")
    if len(key.encode("utf-8")) > _KEY_MAX_BYTES:
        problems.append(f"object key is longer than {_KEY_MAX_BYTES} bytes in UTF-8")
    return problems


S3 = SchemeInfo("s3", "s3://bucket/key", INPUTS_AND_OUTPUTS, _url_problems)


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`; the key is taken literally (no percent-decoding, like
    the AWS CLI) and may be empty or end in '/' (a prefix)."""
    if not url.lower().startswith("s3://"):
        raise StorageError(url, "is not an s3://bucket/key URL")
    bucket, key = _bucket_and_key(url)
    if not bucket:
        raise StorageError(url, "names no bucket: s3://bucket/key")
    return bucket, key
