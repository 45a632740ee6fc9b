"""S3 transfers for people: `tes-cts storage cp|stat|add-checksum`, and `tes-cts run` sending its
local files and fetching the results.

The store is the one the aws CLI would use (`store_from_environment`); every transfer goes through
`tes_cts.storage.s3.S3Storage`, so uploads carry a CRC64NVME (multipart FULL_OBJECT above the
threshold) and downloads are verified against one. Every failure is a StorageError of one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from ..storage.base import ChangedSinceSubmission, ObjectInfo, StorageError, missing_crc64nvme
from ..storage.checksums import ALGORITHM, crc64nvme_of_file, decode
from ..storage.config import S3StoreConfig
from ..storage.s3 import MAX_PART_BYTES, NO_SUCH_OBJECT, S3Storage, describe
from ..storage.s3_urls import parse_s3_url
from .progress import progress_bar

MIB = 1024 * 1024
MULTIPART_THRESHOLD_BYTES = 64 * MIB
THRESHOLD_VARIABLE = "TES_MULTIPART_THRESHOLD_BYTES"
DEFAULT_REGION = "us-east-1"
MAX_COPY_BYTES = MAX_PART_BYTES  # the largest object one CopyObject copies (5 GiB)
AWS_CONFIGURATION = "AWS configuration"  # what a StorageError about the environment names


@dataclass(frozen=True)
class Uploaded:
    path: Path       # the local file
    url: str         # the object it is now
    info: ObjectInfo
    sent: bool       # False: the object already held these bytes (same size and CRC64NVME)


# --- the store ------------------------------------------------------------------------------------


def store_from_environment() -> S3StoreConfig:
    """The S3 endpoint, region and credentials the aws CLI would use (AWS_PROFILE, AWS_ACCESS_KEY_ID
    and AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, AWS_REGION, ~/.aws/config
    and ~/.aws/credentials); anonymous when no credentials are found. Raises StorageError."""
    try:
        session = botocore.session.Session()
        access_key_id, secret, token = _credentials(session)
        region = os.environ.get("AWS_REGION") or session.get_config_variable("region") or DEFAULT_REGION
        endpoint = _configured_endpoint(session) or _aws_endpoint(region)
        attempts = session.get_config_variable("max_attempts")  # AWS_MAX_ATTEMPTS; else the store's default
        name = session.profile or "default"
    except BotoCoreError as exc:
        raise StorageError(AWS_CONFIGURATION, _one_line(str(exc))) from None
    return S3StoreConfig(name=name, endpoint_url=endpoint, region=region, access_key_id=access_key_id,
                         secret_access_key=secret, session_token=token, multipart_threshold_bytes=_multipart_threshold(),
                         **({"max_attempts": attempts} if attempts else {}))


def _credentials(session) -> tuple[str, str, str]:
    """Access key id, secret and session token (empty for a long-term key pair); empty: anonymous."""
    found = session.get_credentials()
    if found is None:
        return "", "", ""
    frozen = found.get_frozen_credentials()
    return frozen.access_key or "", frozen.secret_key or "", frozen.token or ""


def _configured_endpoint(session) -> str | None:
    """The endpoint the aws CLI would use for S3, if one is configured."""
    if session.get_config_variable("ignore_configured_endpoint_urls"):
        return None
    try:
        # botocore's own lookup (service variable, global variable, profile's services section,
        # profile): private to botocore, hence the fallback on the variables alone.
        from botocore.configprovider import ConfiguredEndpointProvider

        return ConfiguredEndpointProvider(full_config=session.full_config, scoped_config=session.get_scoped_config(),
                                          client_name="s3").provide()
    except (ImportError, TypeError, AttributeError):
        return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def _aws_endpoint(region: str) -> str:
    # What botocore would pick; named here so that messages can say which endpoint answered.
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://s3.{region}.{domain}"


def _multipart_threshold() -> int:
    text = os.environ.get(THRESHOLD_VARIABLE)
    if text is None:
        return MULTIPART_THRESHOLD_BYTES
    try:
        threshold = int(text)
    except ValueError:
        threshold = 0
    if threshold < 1:
        raise StorageError(THRESHOLD_VARIABLE, f"must be a positive whole number of bytes, not {text!r}")
    return threshold


def _storage() -> S3Storage:
    return S3Storage(store_from_environment())


# --- stat -----------------------------------------------------------------------------------------


def stat(url: str) -> ObjectInfo:
    """What the store says of the object (or, for a URL ending in '/', of all objects under the
    prefix: their total size)."""
    return _storage().stat(url)


# --- upload ---------------------------------------------------------------------------------------


def upload(path: Path, url: str, quiet: bool = False) -> tuple[ObjectInfo, bool]:
    """Upload a local file with its CRC64NVME; (the object's info, whether anything was sent: not
    when the object already has the file's size and CRC64NVME). A URL ending in '/' names the
    prefix the file goes under. A directory uploads every file under it to url + relative path."""
    path = Path(path)
    if path.is_dir():
        uploaded = upload_directory(path, url, quiet)
        return ObjectInfo(sum(one.info.size for one in uploaded), True), any(one.sent for one in uploaded)
    one = upload_file(path, url, quiet)
    return one.info, one.sent


def upload_file(path: Path, url: str, quiet: bool = False) -> Uploaded:
    path = Path(path)
    size = _local_size(path)
    url = object_url(path, url)
    with progress_bar(size, path.name, quiet) as progress:
        return _upload_one(_storage(), path, url, size, progress)


def upload_directory(path: Path, url: str, quiet: bool = False) -> list[Uploaded]:
    """Every file under the directory `path` to `url` + its relative path, in path order."""
    path = Path(path)
    files = _files_under(path)
    if not files:
        raise StorageError(str(path), "is an empty directory: there is nothing to upload")
    prefix = url if url.endswith("/") else url + "/"
    sizes = [_local_size(file) for file in files]
    storage = _storage()
    with progress_bar(sum(sizes), path.name, quiet) as progress:
        return [_upload_one(storage, file, prefix + file.relative_to(path).as_posix(), size, progress)
                for file, size in zip(files, sizes)]


def object_url(path: Path, url: str) -> str:
    """The object a file uploaded to `url` becomes: `url` itself, or the file's name under it when
    `url` names a prefix (a bucket alone, or a key ending in '/')."""
    _, key = parse_s3_url(url)
    if key and not key.endswith("/"):
        return url
    return (url if url.endswith("/") else url + "/") + Path(path).name


def _upload_one(storage: S3Storage, path: Path, url: str, size: int, progress) -> Uploaded:
    existing = _existing(storage, url)
    if _holds(existing, path, size):
        if progress is not None:
            progress(size)
        return Uploaded(path, url, existing, False)
    return Uploaded(path, url, storage.put(path, url, progress), True)


def _existing(storage: S3Storage, url: str) -> ObjectInfo | None:
    try:
        return storage.stat(url)
    except StorageError as exc:
        if exc.reason == NO_SUCH_OBJECT:
            return None
        raise


def _holds(existing: ObjectInfo | None, path: Path, size: int) -> bool:
    """Whether the object already holds the file's bytes. The file is read only when the sizes agree."""
    if existing is None or existing.checksum is None or existing.size != size:
        return False
    try:
        return crc64nvme_of_file(path).crc64nvme == existing.checksum
    except OSError as exc:
        raise StorageError(str(path), f"cannot read it: {exc.strerror or exc}") from None


def _local_size(path: Path) -> int:
    try:
        status = path.stat()
    except OSError as exc:
        raise StorageError(str(path), exc.strerror or str(exc)) from None
    if not path.is_file():
        raise StorageError(str(path), "is not a regular file")
    return status.st_size


def _files_under(directory: Path) -> list[Path]:
    try:
        return sorted(path for path in directory.rglob("*") if path.is_file())
    except OSError as exc:
        raise StorageError(str(directory), f"cannot list it: {exc.strerror or exc}") from None


# --- download -------------------------------------------------------------------------------------


def download(url: str, dest: Path, expected_crc64nvme: str | None = None, quiet: bool = False) -> ObjectInfo:
    """Download the object to the file `dest`, verified against `expected_crc64nvme` (base64, as the
    TES output log reports it) if given, else against the CRC64NVME the store holds; nothing is
    written to `dest` unless the bytes are verified. A URL ending in '/' downloads every object under
    the prefix into the directory `dest` (absent or empty), each verified."""
    dest = Path(dest)
    storage = _storage()
    if url.endswith("/"):
        if expected_crc64nvme is not None:
            raise StorageError(url, "an expected CRC64NVME names one object, and this URL names a prefix")
        return _download_prefix(storage, url, dest, quiet)
    info = storage.stat(url)
    if info.is_dir:
        raise StorageError(url, "names a prefix (the bucket alone): end the URL with '/' to download all of it")
    entry = _verified_entry(url, info, expected_crc64nvme)
    _make_parent(url, dest)
    with progress_bar(info.size, dest.name, quiet) as progress:
        try:
            storage.get(url, dest, False, [entry], progress)
        except ChangedSinceSubmission as exc:
            raise _not_verified(url, dest, exc) from None
    return replace(info, checksum=entry["crc64nvme"])


def _verified_entry(url: str, info: ObjectInfo, expected: str | None) -> dict:
    """What the bytes must be (S3Storage.get's entry): the expected CRC64NVME, which the stored one
    (if any) must equal, or the stored one."""
    if expected is not None:
        _check_crc64nvme_form(url, expected)
        if info.checksum is not None and info.checksum != expected:
            raise StorageError(url, f"the store holds CRC64NVME {info.checksum}, not the expected {expected}: "
                                    "not downloaded")
    elif info.checksum is None:
        raise StorageError(url, f"{missing_crc64nvme(url, info)}; or give it one where it is: "
                                f"`tes-cts storage add-checksum {url}`")
    return {"url": url, "size": info.size, "etag": info.etag, "crc64nvme": expected or info.checksum}


def _check_crc64nvme_form(url: str, text: str) -> None:
    try:
        decode(text)
    except ValueError as exc:
        raise StorageError(url, f"the expected CRC64NVME is not one: {exc}") from None


def _not_verified(url: str, dest: Path, exc: ChangedSinceSubmission) -> StorageError:
    # exc says "changed since submission (recorded ..., now ...)": here the record is the expectation.
    detail = exc.reason.removeprefix("changed since submission ")
    return StorageError(url, f"the bytes received are not the expected ones {detail}, or the object changed "
                             f"during the download; nothing was written to {dest}")


def _download_prefix(storage: S3Storage, url: str, dest: Path, quiet: bool) -> ObjectInfo:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise StorageError(url, f"the destination {dest} must be absent or an empty directory")
    info = storage.stat(url)  # the total size; raises when no object is under the prefix
    _make_parent(url, dest)
    with progress_bar(info.size, dest.name, quiet) as progress:
        storage.get(url, dest, True, None, progress)
    return info


def _make_parent(url: str, dest: Path) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(url, f"cannot make the directory {dest.parent}: {exc.strerror or exc}") from None


# --- add-checksum ---------------------------------------------------------------------------------

# Carried over to the object's copy, as a HEAD shows them: REPLACE keeps only what it is given.
_CONTENT_HEADERS = ("ContentType", "CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage",
                    "Expires", "WebsiteRedirectLocation")


def add_checksum(url: str) -> ObjectInfo:
    """Give an existing object a CRC64NVME without changing its bytes: the store copies it onto
    itself computing one. Raises StorageError, also when the store then shows none."""
    return give_checksum(url)[0]


def give_checksum(url: str) -> tuple[ObjectInfo, bool]:
    """add_checksum, and whether a copy was needed (not for an object that has a CRC64NVME).

    The copy keeps the metadata, tags, storage class and KMS encryption; like any S3 copy it does
    not keep an object ACL (buckets with ACLs disabled, the S3 default, have none)."""
    storage = _storage()
    before = storage.stat(url)
    if before.is_dir:
        raise StorageError(url, "names a prefix: add-checksum takes the URL of one object")
    if before.checksum is not None:
        return before, False
    if before.size > MAX_COPY_BYTES:
        raise StorageError(url, f"is larger than {MAX_COPY_BYTES // (1024 * MIB)} GiB, the most one CopyObject "
                                "copies; upload the file again instead: `tes-cts storage cp FILE URL`")
    _copy_onto_itself(storage, url, _head(storage, url))
    after = storage.stat(url)
    if after.checksum is None:
        raise StorageError(url, f"the store did not store the checksum: the copy onto itself succeeded but the "
                                f"object still has no {ALGORITHM} (some stores, e.g. Ceph, drop checksums on copy); "
                                "upload the file again instead: `tes-cts storage cp FILE URL`")
    if after.size != before.size:
        raise StorageError(url, f"changed while the checksum was added: {before.size} bytes before, {after.size} now")
    return after, True


def _head(storage: S3Storage, url: str) -> dict:
    bucket, key = parse_s3_url(url)
    try:
        return storage.client.head_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(url, describe(exc, storage.store)) from None


def _copy_onto_itself(storage: S3Storage, url: str, head: dict) -> None:
    bucket, key = parse_s3_url(url)
    copy = dict(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key}, CopySourceIfMatch=head["ETag"],
                ChecksumAlgorithm=ALGORITHM, **_kept_storage(head))
    try:
        try:
            storage.client.copy_object(**copy, MetadataDirective="COPY")
        except ClientError as exc:
            if not _refused_as_unchanged(exc):
                raise
            # Some stores do not count a new checksum as a change of the object; its own metadata,
            # given again, is one.
            storage.client.copy_object(**copy, MetadataDirective="REPLACE", **_metadata(head))
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412:
            raise StorageError(url, "changed while the checksum was being added (its ETag is not the one read "
                                    "just before): try again") from None
        raise StorageError(url, describe(exc, storage.store)) from None
    except BotoCoreError as exc:
        raise StorageError(url, describe(exc, storage.store)) from None


def _kept_storage(head: dict) -> dict:
    """What a copy would otherwise reset: the storage class and the encryption (else the bucket's
    default applies)."""
    kept = {}
    if head.get("StorageClass"):
        kept["StorageClass"] = head["StorageClass"]
    encryption = head.get("ServerSideEncryption")
    if encryption:
        kept["ServerSideEncryption"] = encryption
    if encryption and encryption.startswith("aws:kms"):
        kept.update({name: head[name] for name in ("SSEKMSKeyId", "BucketKeyEnabled") if head.get(name) is not None})
    return kept


def _metadata(head: dict) -> dict:
    carried = {name: head[name] for name in _CONTENT_HEADERS if head.get(name)}
    return {"Metadata": head.get("Metadata") or {}, **carried}


def _refused_as_unchanged(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") == "InvalidRequest" and "to itself" in str(error.get("Message", ""))


def _one_line(text: str) -> str:
    return " ".join(text.split())
