"""`tes-cts storage cp|stat|add-checksum`: S3 objects with CRC64NVME."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .failures import CommandError, one_line_errors

ENVIRONMENT_HELP = ("The S3 endpoint and credentials are those the aws CLI uses: AWS_PROFILE, AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3), AWS_REGION, ~/.aws/config and "
                    "~/.aws/credentials; with none, requests are anonymous. Uploads larger than "
                    "TES_MULTIPART_THRESHOLD_BYTES (default 64 MiB) are multipart.")


def register(commands) -> None:
    """Add this module's verbs to the `tes-cts` subparsers `commands`."""
    storage = commands.add_parser("storage", help="copy files to and from S3 with CRC64NVME checksums",
                                  description="S3 objects with CRC64NVME checksums, as tes-cts tasks need their "
                                              "inputs. " + ENVIRONMENT_HELP)
    verbs = storage.add_subparsers(dest="verb", required=True, metavar="VERB")
    cp = verbs.add_parser("cp", help="upload or download, verified by CRC64NVME",
                          description="Upload a local file or directory to S3 with a CRC64NVME (not sent again when "
                                      "the object already has the same size and CRC64NVME), or download an object "
                                      "(or, with a URL ending in '/', every object under a prefix) and verify its "
                                      "CRC64NVME; between two s3:// URLs the bytes pass through this machine. "
                                      + ENVIRONMENT_HELP)
    cp.add_argument("source", metavar="SRC", help="a local path or an s3://bucket/key URL")
    cp.add_argument("destination", metavar="DST", help="a local path or an s3://bucket/key URL (ending in '/': "
                                                       "SRC's name under it)")
    cp.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    cp.set_defaults(handler=one_line_errors(_cp))
    stat = verbs.add_parser("stat", help="an object's size, ETag, checksums and encryption",
                            description="What the store holds of an object: size, ETag, CRC64NVME and the other "
                                        "checksums it carries, encryption. " + ENVIRONMENT_HELP)
    stat.add_argument("url", metavar="URL", help="s3://bucket/key (ending in '/': the total under a prefix)")
    stat.set_defaults(handler=one_line_errors(_stat))
    add = verbs.add_parser("add-checksum", help="give an existing object a CRC64NVME, its bytes unchanged",
                           description="Give an object a CRC64NVME (which every tes-cts input needs) without "
                                       "uploading it again: the store copies it onto itself and computes it. "
                                       + ENVIRONMENT_HELP)
    add.add_argument("url", metavar="URL", help="s3://bucket/key")
    add.set_defaults(handler=one_line_errors(_add_checksum))


def _is_s3(location: str) -> bool:
    return location.lower().startswith("s3://")


# --- cp -------------------------------------------------------------------------------------------


def _cp(args) -> None:
    from_s3, to_s3 = _is_s3(args.source), _is_s3(args.destination)
    if not from_s3 and not to_s3:
        raise CommandError("neither SRC nor DST is an s3:// URL: copy local files with cp")
    if from_s3 and to_s3:
        _copy_through_here(args.source, args.destination, args.quiet)
    elif to_s3:
        _upload(Path(args.source), args.destination, args.quiet)
    else:
        _download(args.source, args.destination, args.quiet)


def _upload(path: Path, url: str, quiet: bool) -> None:
    from . import transfer

    if path.is_dir():
        uploaded = transfer.upload_directory(path, url, quiet)
        for one in uploaded:
            print(_upload_line(one))
        sent = sum(one.sent for one in uploaded)
        print(f"{len(uploaded)} files from {path}: {sent} uploaded, {len(uploaded) - sent} already there")
    else:
        print(_upload_line(transfer.upload_file(path, url, quiet)))


def _upload_line(one) -> str:
    if not one.sent:
        return f"{one.url}: already there with the same CRC64NVME ({one.info.checksum}): not sent"
    return f"uploaded {one.path} to {one.url}: {one.info.size} bytes, CRC64NVME {one.info.checksum}"


def _download(url: str, destination: str, quiet: bool) -> None:
    from . import transfer

    dest = Path(destination)
    if url.endswith("/"):
        info = transfer.download(url, dest, quiet=quiet)
        count = sum(1 for path in dest.rglob("*") if path.is_file())
        print(f"downloaded {count} objects under {url} to {dest}: {info.size} bytes, the CRC64NVME of each verified")
        return
    target = _local_target(url, destination)
    info = transfer.download(url, target, quiet=quiet)
    print(f"downloaded {url} to {target}: {info.size} bytes, CRC64NVME {info.checksum} verified")


def _local_target(url: str, destination: str) -> Path:
    """The file an object downloaded to `destination` becomes: that path, or the object's name in
    it when it is a directory (or is written as one, ending in '/')."""
    dest = Path(destination)
    if dest.is_dir() or destination.endswith(os.sep):
        return dest / url.rpartition("/")[2]
    return dest


def _copy_through_here(source: str, destination: str, quiet: bool) -> None:
    """s3:// to s3://: a verified download to a scratch directory, then an upload."""
    from . import transfer

    name = source.rstrip("/").rpartition("/")[2] or "object"
    with tempfile.TemporaryDirectory(prefix="tes-cts-cp-") as scratch:
        local = Path(scratch) / name
        if source.endswith("/"):
            transfer.download(source, local, quiet=quiet)
            uploaded = transfer.upload_directory(local, destination, quiet)
            sent = sum(one.sent for one in uploaded)
            print(f"copied {len(uploaded)} objects under {source} to {destination} through this machine, each "
                  f"CRC64NVME verified: {sent} sent, {len(uploaded) - sent} already there")
            return
        transfer.download(source, local, quiet=quiet)
        one = transfer.upload_file(local, destination, quiet)
    if not one.sent:
        print(_upload_line(one))
        return
    print(f"copied {source} to {one.url} through this machine: {one.info.size} bytes, "
          f"CRC64NVME {one.info.checksum} verified")


# --- stat -----------------------------------------------------------------------------------------


def _stat(args) -> None:
    from . import transfer

    info = transfer.stat(args.url)
    for label, value in _stat_lines(args.url, info):
        print(f"{label:<15}: {value}")


def _stat_lines(url: str, info) -> list[tuple[str, str]]:
    if info.is_dir:
        return [("URL", url), ("Type", "prefix"), ("Size", f"{_human(info.size)} in all")]
    crc = info.checksum or f"none (`tes-cts storage add-checksum {url}` gives it one)"
    return [
        ("URL", url),
        ("Size", _human(info.size)),
        ("ETag", info.etag or "none"),
        ("CRC64NVME", crc),
        ("Other checksums", ", ".join(info.other_checksums) or "none"),
        ("Encryption", info.encryption or "none, or SSE-S3 (no key needed to read)"),
    ]


_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB")


def _human(size: int) -> str:
    power = 0
    while power < len(_UNITS) - 1 and size >= 1024 ** (power + 1):
        power += 1
    if power == 0:
        return f"{size} bytes"
    return f"{size / 1024 ** power:.1f} {_UNITS[power]} ({size} bytes)"


# --- add-checksum ---------------------------------------------------------------------------------


def _add_checksum(args) -> None:
    from . import transfer

    info, copied = transfer.give_checksum(args.url)
    if copied:
        print(f"{args.url}: CRC64NVME {info.checksum} added, the bytes unchanged")
    else:
        print(f"{args.url}: already has CRC64NVME {info.checksum}: nothing to do")
