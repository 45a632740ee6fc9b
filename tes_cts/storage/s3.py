"""s3://bucket/key on any S3-compatible store, through boto3, with CRC64NVME on every byte.

- stat: HEAD with ChecksumMode=ENABLED; the object's CRC64NVME, ETag and encryption, and which
  other checksums it has (CRC32 when boto3 uploaded it without being told otherwise).
- list: every object under a key prefix (ListObjectsV2, paginated), for DIRECTORY inputs.
- get: the body is streamed to a temporary file beside the destination while its CRC64NVME is
  computed (memory stays flat whatever the size); pinned with If-Match to the ETag recorded at
  preflight (a read that breaks off resumes with a Range from where it stopped); renamed into
  place only if the size and CRC64NVME are the recorded ones, else ChangedSinceSubmission.
- put: the CRC64NVME is computed locally first; a single PUT carrying it below the store's
  multipart threshold, else a multipart upload (CRC64NVME, FULL_OBJECT) with a checksum on each
  part; the upload is aborted on any failure. The checksum the store then reports (HEAD) must be
  the local one: some stores accept a mismatch without a word.
- put and get take an optional `progress` callback (the command line's progress bar).

Path-style addressing always (most S3-compatible stores need it); requests are retried by
botocore's "standard" mode (exponential backoff) up to the store's `max_attempts`. The secret key
never appears in a message: every text from botocore goes through `_scrubbed`.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from urllib3.exceptions import HTTPError as Urllib3Error

from .atomic import atomic_directory, atomic_file
from .base import (
    ChangedSinceSubmission,
    ChecksumMismatch,
    ObjectInfo,
    Storage,
    StorageError,
    check_relative,
    compare_listing,
    missing_crc64nvme,
)
from .checksums import ALGORITHM, CHUNK_BYTES, Crc64Nvme, combine, crc64nvme, encode
from .config import S3StoreConfig, StorageConfig
from .s3_stores import check_key
from .s3_urls import parse_s3_url

MIB = 1024 * 1024
MIN_PART_BYTES = 5 * MIB            # S3's smallest part (but the last)
PART_BYTES = 8 * MIB                # the part size, up to 78 GiB (10,000 parts)
MAX_PART_BYTES = 5 * 1024 * MIB     # S3's largest part, and largest single PUT
MAX_PARTS = 10_000
PART_CONCURRENCY = 4                # parts of one upload in flight at once (memory: none is held)
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0

# A body read that breaks off: resumed with a Range. Everything else is not retried here (botocore
# already retried the request itself).
_BROKEN_READ = (ReadTimeoutError, ResponseStreamingError, IncompleteReadError, ConnectionClosedError, Urllib3Error)
# A store rejecting who we are (as opposed to what we may do).
_CREDENTIAL_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
                               "TokenRefreshRequired", "InvalidSecurity", "InvalidClientTokenId"})
# The reason of the StorageError of `stat` when the bucket exists but the object does not.
NO_SUCH_OBJECT = "no such object"

# Told the count of bytes sent or received since its last call (negative when a request body is
# rewound for a retry); called from several threads at once during a multipart upload.
Progress = Callable[[int], None]


class S3Storage(Storage):
    verifiable = True

    def __init__(self, store: S3StoreConfig, max_connections: int = 10):
        self.store = store
        self.client = client_for(store, max_connections)

    def __repr__(self) -> str:
        return f"S3Storage(store={self.store.name!r}, endpoint_url={self.store.endpoint_url!r})"

    # --- stat and list --------------------------------------------------------------------------

    def stat(self, url: str) -> ObjectInfo:
        bucket, key = self._locate(url)
        if not key or key.endswith("/"):
            objects = self._objects(url)
            return ObjectInfo(sum(size for _, size, _ in objects), True)
        try:
            head = self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            raise StorageError(url, self._head_failure(exc, bucket)) from None
        except BotoCoreError as exc:
            raise StorageError(url, self._describe(exc)) from None
        encryption = head.get("ServerSideEncryption")
        if head.get("SSECustomerAlgorithm"):
            encryption = "SSE-C"
        elif encryption and not encryption.startswith("aws:kms"):
            encryption = None  # SSE-S3 (AES256): transparent to readers
        return ObjectInfo(head["ContentLength"], False, head.get("ChecksumCRC64NVME"), head.get("ETag"), encryption,
                          _other_checksums(head))

    def list(self, url: str) -> list[str]:
        return [object_url for object_url, _, _ in self._objects(url)]

    def _objects(self, url: str) -> list[tuple[str, int, str | None]]:
        """(URL, size, ETag) of every object under the prefix `url` names; folder markers (empty
        objects whose key ends in '/') are skipped. Raises StorageError, also when there is none."""
        bucket, prefix = self._locate(url, prefix=True)
        found = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    key, size = item["Key"], item["Size"]
                    if key.endswith("/") and size == 0:
                        continue
                    _relative_key(url, prefix, key)
                    found.append((f"s3://{bucket}/{key}", size, item.get("ETag")))
        except ClientError as exc:
            raise StorageError(url, self._describe(exc)) from None
        except BotoCoreError as exc:
            raise StorageError(url, self._describe(exc)) from None
        if not found:
            raise StorageError(url, f"no object under the prefix s3://{bucket}/{prefix} (a DIRECTORY input names a key prefix)")
        return found

    # --- get ------------------------------------------------------------------------------------

    def get(self, url: str, dest: Path, is_dir: bool, expected: list[dict] | None = None,
            progress: Progress | None = None) -> int:
        """See `Storage.get`; `progress`, if given, is told of the bytes as they arrive."""
        dest = Path(dest)
        try:
            if not is_dir:
                entry = expected[0] if expected else self._entry(url)
                with atomic_file(dest, durable=False) as handle:
                    return self._download(entry, handle, progress=progress)
            return self._get_directory(url, dest, expected, progress)
        except OSError as exc:
            raise StorageError(url, f"cannot write the file: {exc.strerror or type(exc).__name__}") from None

    def _get_directory(self, url: str, dest: Path, expected: list[dict] | None, progress: Progress | None) -> int:
        bucket, prefix = self._locate(url, prefix=True)
        objects = self._objects(url)
        if expected is None:
            entries = [self._entry(object_url) for object_url, _, _ in objects]
        else:
            compare_listing(url, expected, [object_url for object_url, _, _ in objects])
            entries = sorted(expected, key=lambda entry: entry["url"])
            listed = {object_url: (size, etag) for object_url, size, etag in objects}
            for entry in entries:  # what the listing already shows changed: before any download
                size, etag = listed[entry["url"]]
                if size != entry.get("size") or (entry.get("etag") and etag and etag != entry["etag"]):
                    raise self._changed(entry, within=url)
        total = 0
        with atomic_directory(dest) as temporary:
            for entry in entries:
                relative = _relative_key(url, prefix, parse_s3_url(entry["url"])[1])
                target = temporary / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with atomic_file(target, durable=False) as handle:
                    total += self._download(entry, handle, within=url, progress=progress)
        return total

    def _entry(self, url: str) -> dict:
        """A VerifiedInputs entry made now, for a get nobody recorded one for: the store's own
        CRC64NVME is then what the bytes must match."""
        info = self.stat(url)
        if info.checksum is None:
            raise StorageError(url, missing_crc64nvme(url, info))
        return {"url": url, "size": info.size, "etag": info.etag, "crc64nvme": info.checksum}

    def _download(self, entry: dict, handle, within: str | None = None, progress: Progress | None = None) -> int:
        """Write the object of `entry` to `handle`; its bytes must be the recorded ones."""
        received = self._receive(entry, handle, within, progress)
        if received.size != entry.get("size") or received.encoded() != entry.get("crc64nvme"):
            raise ChangedSinceSubmission.of(entry, received.encoded(), received.size, within=within)
        return received.size

    def _receive(self, entry: dict, handle, within: str | None, progress: Progress | None = None) -> Crc64Nvme:
        """Copy the object's body to `handle`; a read that breaks off resumes where it stopped, up
        to the store's `max_attempts` times. The size and CRC64NVME of what arrived."""
        running = Crc64Nvme()
        etag = entry.get("etag")
        failures = 0
        while True:
            response = self._get_from(entry, etag, running.size, within)
            etag = etag or response.get("ETag")  # a resumed read must get the same object
            broken = _copy_body(response["Body"], handle, running, progress)
            if broken is None or running.size >= entry.get("size", -1):  # all there: the CRC64NVME decides
                return running
            failures += 1
            if failures >= self.store.max_attempts:
                raise StorageError(entry["url"], f"the download broke off {failures} times, the last after "
                                                 f"{running.size} of {entry.get('size')} bytes: {self._describe(broken)}")
            time.sleep(_backoff(failures))

    def _get_from(self, entry: dict, etag: str | None, offset: int, within: str | None) -> dict:
        """The GetObject response for the object of `entry` from byte `offset` on, pinned to `etag`;
        ChangedSinceSubmission when the store no longer holds the recorded object."""
        url = entry["url"]
        bucket, key = self._locate(url)
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if etag:
            params["IfMatch"] = etag
        if offset:
            params["Range"] = f"bytes={offset}-"
        try:
            response = self.client.get_object(**params)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 412 or _code(exc) in ("NoSuchKey", "PreconditionFailed"):
                raise self._changed(entry, within) from None
            raise StorageError(url, self._describe(exc)) from None
        except BotoCoreError as exc:
            raise StorageError(url, self._describe(exc)) from None
        if not offset and response.get("ContentLength") != entry.get("size"):
            response["Body"].close()
            raise self._changed(entry, within)
        if offset and not str(response.get("ContentRange", "")).startswith(f"bytes {offset}-"):
            response["Body"].close()
            raise StorageError(url, f"the store ignored the Range of a resumed download (answered "
                                    f"{response.get('ContentRange') or 'the whole object'})")
        return response

    def _changed(self, entry: dict, within: str | None) -> ChangedSinceSubmission:
        """ChangedSinceSubmission for an object whose ETag or size is no longer the recorded one,
        saying what the store holds now."""
        bucket, key = parse_s3_url(entry["url"])
        try:
            head = self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except (ClientError, BotoCoreError) as exc:
            missing = isinstance(exc, ClientError) and _code(exc) in ("404", "NoSuchKey")
            detail = "the object was deleted" if missing else f"its ETag changed; it cannot be read now: {self._describe(exc)}"
            return ChangedSinceSubmission.of(entry, None, within=within, detail=detail)
        return ChangedSinceSubmission.of(entry, head.get("ChecksumCRC64NVME"), head.get("ContentLength"), within=within)

    # --- put ------------------------------------------------------------------------------------

    def put(self, src: Path, url: str, progress: Progress | None = None) -> ObjectInfo:
        """See `Storage.put`; `progress`, if given, is told of the bytes as they are sent."""
        bucket, key = self._locate(url)
        try:
            with open(src, "rb", buffering=0) as handle:
                size = os.fstat(handle.fileno()).st_size
                threshold = max(1, min(self.store.multipart_threshold_bytes, MAX_PART_BYTES))
                if size < threshold or size == 0:
                    local = _checksums(handle, url, size, size or 1)
                    body = _FileSlice(handle.fileno(), 0, size, progress)
                    self._call(url, "put_object", Bucket=bucket, Key=key, Body=body,
                               ContentLength=size, ChecksumAlgorithm=ALGORITHM, ChecksumCRC64NVME=local.whole)
                else:
                    local = _checksums(handle, url, size, part_size(size))
                    self._multipart(url, bucket, key, handle.fileno(), local, progress)
        except OSError as exc:
            raise StorageError(url, f"cannot read {src}: {exc.strerror or exc}") from None
        etag = self._confirm(url, bucket, key, size, local.whole)
        return ObjectInfo(size, False, local.whole, etag)

    def _multipart(self, url: str, bucket: str, key: str, fd: int, local: _LocalChecksums,
                   progress: Progress | None = None) -> None:
        """Parts are sent PART_CONCURRENCY at a time, each read from the file as it is sent."""
        created = self._call(url, "create_multipart_upload", Bucket=bucket, Key=key,
                             ChecksumAlgorithm=ALGORITHM, ChecksumType="FULL_OBJECT")
        upload_id = created["UploadId"]

        def send(number: int, offset: int, length: int, crc: str) -> dict:
            done = self._call(url, "upload_part", Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                              Body=_FileSlice(fd, offset, length, progress), ContentLength=length,
                              ChecksumAlgorithm=ALGORITHM, ChecksumCRC64NVME=crc)
            return {"PartNumber": number, "ETag": done["ETag"], "ChecksumCRC64NVME": crc}

        pool = ThreadPoolExecutor(max_workers=min(PART_CONCURRENCY, len(local.parts)), thread_name_prefix="s3-part")
        try:
            sending = [pool.submit(send, number, *part) for number, part in enumerate(local.parts, start=1)]
            parts = [future.result() for future in sending]  # the first failure, in part order
            self._call(url, "complete_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id,
                       MultipartUpload={"Parts": parts}, ChecksumCRC64NVME=local.whole, ChecksumType="FULL_OBJECT")
        except BaseException as exc:
            pool.shutdown(wait=True, cancel_futures=True)  # no part may land after the abort
            try:
                self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except (ClientError, BotoCoreError) as abort:
                if isinstance(exc, StorageError):
                    raise StorageError(url, f"{exc.reason}; and the multipart upload {upload_id} could not be aborted "
                                            f"({self._describe(abort)}): a bucket lifecycle rule "
                                            "AbortIncompleteMultipartUpload removes such uploads") from None
            raise
        finally:
            pool.shutdown(wait=True)

    def _confirm(self, url: str, bucket: str, key: str, size: int, local: str) -> str | None:
        """The store must report the CRC64NVME (and size) computed here: the object's ETag then;
        otherwise the object is deleted and StorageError says why."""
        head = self._call(url, "head_object", Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        stored, stored_size = head.get("ChecksumCRC64NVME"), head.get("ContentLength")
        if stored == local and stored_size == size:
            return head.get("ETag")
        said = f"store returned CRC64NVME {stored or 'none'} for {url}, local {local}"
        if stored_size != size:
            said += f" (and {stored_size} bytes, local {size})"
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
            said += "; the object was deleted"
        except (ClientError, BotoCoreError) as exc:
            said += f"; the object could not be deleted: {self._describe(exc)}"
        raise ChecksumMismatch(url, said)

    def join(self, url: str, relative: str) -> str:
        check_relative(url, relative)
        return (url if url.endswith("/") else url + "/") + relative

    # --- helpers --------------------------------------------------------------------------------

    def _locate(self, url: str, prefix: bool = False) -> tuple[str, str]:
        """(bucket, key) of `url`, which this store must serve and allow; with `prefix`, the key
        as a listing prefix (empty, or ending in '/')."""
        bucket, key = parse_s3_url(url)
        if self.store.buckets and bucket not in self.store.buckets:
            raise StorageError(url, f"bucket {bucket} is not served by store {self.store.name}")
        if prefix and key and not key.endswith("/"):
            key += "/"
        check_key(self.store, url, key)
        return bucket, key

    def _call(self, url: str, operation: str, **params) -> dict:
        try:
            return getattr(self.client, operation)(**params)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(url, self._describe(exc)) from None

    def _head_failure(self, exc: ClientError, bucket: str) -> str:
        code = _code(exc)
        if code in ("404", "NoSuchKey", "NotFound"):
            try:
                self.client.head_bucket(Bucket=bucket)
            except ClientError as bucket_exc:
                if _code(bucket_exc) in ("404", "NoSuchBucket", "NotFound"):
                    return f"no such bucket {bucket} at {self.store.endpoint_url} (store {self.store.name})"
                return f"no such object (and the bucket cannot be checked: {self._describe(bucket_exc)})"
            except BotoCoreError as bucket_exc:
                return f"no such object (and the bucket cannot be checked: {self._describe(bucket_exc)})"
            return NO_SUCH_OBJECT
        if code == "403":
            return f"access denied (HTTP 403): the credentials of store {self.store.name} may not read it"
        if code == "400":
            return ("the store answered HEAD with HTTP 400, which S3 does for an object encrypted with a "
                    "customer-provided key (SSE-C); this server cannot read such objects")
        return self._describe(exc)

    def _describe(self, exc: BaseException) -> str:
        return describe(exc, self.store)


def describe(exc: BaseException, store: S3StoreConfig) -> str:
    """What went wrong, in words, for a botocore exception; never the secret key."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code, message = error.get("Code", "?"), error.get("Message", "")
        if code == "NoSuchBucket":
            text = f"no such bucket {error.get('BucketName', '')}".rstrip()
        elif code in _CREDENTIAL_CODES:
            text = f"S3 endpoint {store.endpoint_url} rejected the credentials of store {store.name}: {code}: {message}"
        else:
            text = f"{code}: {message} (HTTP {status})" if message else f"HTTP {status} {code}"
    elif isinstance(exc, BotoConnectionError):
        text = f"cannot reach S3 endpoint {store.endpoint_url}: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return _scrubbed(text, store)


def _scrubbed(text: str, store: S3StoreConfig) -> str:
    return text.replace(store.secret_access_key, "***") if store.secret_access_key else text


def _other_checksums(head: dict) -> tuple[str, ...]:
    """The algorithms of the checksums a HEAD (ChecksumMode=ENABLED) shows besides CRC64NVME: each
    is a key `Checksum<ALGORITHM>`, whatever algorithms S3 adds next."""
    return tuple(sorted(key.removeprefix("Checksum") for key in head
                        if key.startswith("Checksum") and key not in ("ChecksumType", f"Checksum{ALGORITHM}")))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _backoff(failures: int) -> float:
    return random.uniform(0, min(20.0, 0.5 * 2 ** failures))


def _copy_body(body, handle, running: Crc64Nvme, progress: Progress | None = None) -> BaseException | None:
    """Copy a response body to `handle`, updating `running`; the exception if the read broke off.
    Errors writing `handle` are raised."""
    try:
        while True:
            try:
                chunk = body.read(CHUNK_BYTES)
            except _BROKEN_READ as exc:
                return exc
            if not chunk:
                return None
            running.update(chunk)
            handle.write(chunk)
            if progress is not None:
                progress(len(chunk))
    finally:
        body.close()


def _relative_key(url: str, prefix: str, key: str) -> str:
    """The path of `key` under the directory `prefix`; refuses a key no file could be made of."""
    relative = key[len(prefix):]
    parts = relative.split("/")
    if not relative or relative.startswith("/") or any(part in ("", ".", "..") for part in parts) or "\x00" in relative:
        raise StorageError(url, f"the object key {key!r} cannot be a file under the directory (empty, '.' or '..' "
                                "path segments)")
    return relative


# --- uploads ------------------------------------------------------------------------------------


def part_size(size: int) -> int:
    """Bytes per part of a multipart upload of `size` bytes: 8 MiB (what s3transfer sends too;
    stores digest small parts faster), or as much as 10,000 parts need, in whole MiB (so that
    reads of 1 MiB never straddle two parts), at most 5 GiB."""
    wanted = max(MIN_PART_BYTES, PART_BYTES, -(-size // MAX_PARTS))
    return min(MAX_PART_BYTES, -(-wanted // MIB) * MIB)


class _LocalChecksums:
    def __init__(self, whole: str, parts: list[tuple[int, int, str]]):
        self.whole = whole      # CRC64NVME of the file
        self.parts = parts      # (offset, length, CRC64NVME) of each part


def _checksums(handle, url: str, size: int, part: int) -> _LocalChecksums:
    """One read of the file: the CRC64NVME of each `part`-sized piece, and of the whole."""
    buffer = bytearray(min(CHUNK_BYTES, part))
    view = memoryview(buffer)
    whole, parts = 0, []
    offset = 0
    while offset < size or not parts:
        length = min(part, size - offset)
        crc = 0
        done = 0
        while done < length:
            count = os.preadv(handle.fileno(), [view[:min(len(buffer), length - done)]], offset + done)
            if count == 0:
                raise StorageError(url, f"the file shrank to {offset + done} bytes while being uploaded")
            crc = crc64nvme(view[:count], crc)
            done += count
        parts.append((offset, length, encode(crc)))
        whole = combine(whole, crc, length)
        offset += length
    if os.fstat(handle.fileno()).st_size != size:
        raise StorageError(url, "the file changed size while being uploaded")
    return _LocalChecksums(encode(whole), parts)


class _FileSlice:
    """`length` bytes of an open file from `offset`, as a seekable binary stream (a request body
    that botocore can hash, send, and rewind for a retry) without holding them in memory.
    `progress` follows the position: what is read counts as sent, a rewind takes it back."""

    def __init__(self, fd: int, offset: int, length: int, progress: Progress | None = None):
        self.fd, self.offset, self.length = fd, offset, length
        self.position = 0
        self.progress = progress

    def read(self, amount: int = -1) -> bytes:
        left = self.length - self.position
        if amount is None or amount < 0 or amount > left:
            amount = left
        if amount <= 0:
            return b""
        data = os.pread(self.fd, amount, self.offset + self.position)
        self._move_to(self.position + len(data))
        return data

    def seek(self, position: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.position, 2: self.length}[whence]
        self._move_to(max(0, min(self.length, base + position)))
        return self.position

    def _move_to(self, position: int) -> None:
        moved, self.position = position - self.position, position
        if moved and self.progress is not None:
            self.progress(moved)

    def tell(self) -> int:
        return self.position

    def __len__(self) -> int:
        return self.length


# --- clients --------------------------------------------------------------------------------------

_clients: dict[tuple[S3StoreConfig, int], Any] = {}
_clients_lock = threading.Lock()


def client_for(store: S3StoreConfig, max_connections: int = 10):
    """The boto3 S3 client of a store (one per store and pool size, made once: clients are
    thread-safe and slow to make). Credentials come from the store only: an empty access key id
    makes anonymous (unsigned) requests, for public buckets."""
    with _clients_lock:
        client = _clients.get((store, max_connections))
        if client is None:
            config = Config(
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "total_max_attempts": max(1, store.max_attempts)},  # first try included
                connect_timeout=CONNECT_TIMEOUT_S,
                read_timeout=READ_TIMEOUT_S,
                max_pool_connections=max_connections,
                tcp_keepalive=True,
                # Checksums are ours to compute (CRC64NVME, once); botocore would add its own.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                signature_version=UNSIGNED if not store.access_key_id else None,
            )
            credentials = {"aws_access_key_id": store.access_key_id, "aws_secret_access_key": store.secret_access_key,
                           "aws_session_token": store.session_token or None} if store.access_key_id else {}
            session = boto3.session.Session()
            client = session.client("s3", endpoint_url=store.endpoint_url or None, region_name=store.region or "us-east-1",
                                    verify=store.verify_tls, config=config, **credentials)
            _clients[(store, max_connections)] = client
        return client


def check_s3_stores(config: StorageConfig) -> None:
    """Check that every configured store answers and accepts its credentials (ListBuckets), and
    that the buckets it names exist. Raises StorageError whose reason is one sentence per failing
    store (joined by '; '), never quoting the secret key."""
    problems = []
    for store in config.s3_stores:
        client = client_for(replace(store, max_attempts=min(store.max_attempts, 2)))
        try:
            client.list_buckets()
        except ClientError as exc:
            if _code(exc) not in ("AccessDenied", "AllAccessDisabled"):  # those: who we are is accepted
                problems.append(describe(exc, store) if _code(exc) in _CREDENTIAL_CODES else
                                f"S3 endpoint {store.endpoint_url} (store {store.name}) refused ListBuckets: {describe(exc, store)}")
                continue
        except BotoCoreError as exc:
            problems.append(_scrubbed(f"cannot reach S3 endpoint {store.endpoint_url} (store {store.name}): {exc}", store)
                            if isinstance(exc, BotoConnectionError) else describe(exc, store))
            continue
        for bucket in store.buckets:
            try:
                client.head_bucket(Bucket=bucket)
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                said = {404: "does not exist", 403: "may not be read with its credentials (HTTP 403)",
                        301: "is in another region than the store's"}.get(status, describe(exc, store))
                problems.append(f"bucket {bucket} of store {store.name} at {store.endpoint_url} {said}")
            except BotoCoreError as exc:
                problems.append(f"bucket {bucket} of store {store.name}: {describe(exc, store)}")
    if problems:
        raise StorageError("S3 stores", "; ".join(problems))
