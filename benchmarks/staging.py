"""Staging throughput: the worker's staging code against plain boto3, on the same S3 endpoint.

    .venv/bin/python benchmarks/staging.py                   # 1 GiB each way
    .venv/bin/python benchmarks/staging.py --size-mib 256 --rounds 3

What it does, in one run:
1. starts moto's S3 server on a free loopback port (in this process, which does nothing else
   while the variants run) and writes a file of --size-mib random bytes in a temporary dir;
2. runs each variant in a subprocess of its own, --rounds times, in alternating order:
   - upload, ours: `stage_outputs` of a task with that file as its one output: CRC64NVME
     computed locally, a multipart upload (CRC64NVME, FULL_OBJECT) with the default 64 MiB
     threshold and parts, then HEAD to compare the store's checksum;
   - upload, boto3: `client.upload_file` with boto3's defaults (s3transfer: 8 MiB parts, 10
     threads, botocore's own CRC32 per part: the object gets a COMPOSITE CRC32, which preflight
     would refuse as an input);
   - upload, boto3 with CRC64NVME: the same with ExtraArgs ChecksumAlgorithm=CRC64NVME, which
     makes the object a FULL_OBJECT CRC64NVME one like ours (moto then keeps a second copy of
     the whole object to checksum it when the upload completes: this costs either side the same);
   - download, ours: `stage_inputs` of a task with the uploaded object as its one input, given
     the entries preflight recorded (If-Match on the ETag, CRC64NVME computed while streaming,
     compared before the rename);
   - download, boto3: `client.download_file` with boto3's defaults (8 MiB ranged GETs, 10
     threads, no checksum);
   - download, boto3 get_object: one GET whose body is copied to the file in 1 MiB reads, no
     checksum: the same single stream as ours, without the CRC64NVME, If-Match and rename;
   each subprocess makes its client (and imports) first, then times the transfer alone, and
   reports its peak RSS (VmHWM: see _rss_mib) before and after the transfer;
3. checks the CRC64NVME of every downloaded file against the source, and prints the table:
   MiB/s of each variant (median of the rounds), ours / that variant, and the peak RSS.

Both sides talk to the same moto server with the same path-style client settings. moto is the
slowest part of the path (a Python server, one request at a time per thread): boto3's parallel
ranged requests and ours, one stream, share its 2 cores with the client here. Only the figures
of one run compared with each other mean something.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout: tes_cts is importable

MIB = 1024 * 1024
BUCKET = "staging-benchmark"
VARIANTS = ("upload-ours", "upload-boto3", "upload-boto3-crc64nvme", "download-ours", "download-boto3",
            "download-boto3-get-object")
ACCESS_KEY_ID, SECRET_ACCESS_KEY, REGION = "benchmark", "benchmark-secret", "us-east-1"


# --- one variant, in its own process ---------------------------------------------------------


def _rss_mib() -> float:
    """Peak RSS of this process so far. ru_maxrss would do, but Linux carries the parent's
    high-water mark over fork + exec (this benchmark's parent holds moto and its objects), so the
    same figure is read from VmHWM, which starts afresh at exec; ru_maxrss where there is none."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(variant: str, endpoint: str, src: str, workdir: str, key: str) -> dict:
    import boto3
    from botocore.config import Config

    from tes_cts.jobfiles import Job
    from tes_cts.storage import StorageConfig
    from tes_cts.storage.config import S3StoreConfig
    from tes_cts.storage.preflight import preflight_inputs
    from tes_cts.worker.paths import FileMapper
    from tes_cts.worker.staging import stage_inputs, stage_outputs

    store = S3StoreConfig(name="default", endpoint_url=endpoint, region=REGION, access_key_id=ACCESS_KEY_ID,
                          secret_access_key=SECRET_ACCESS_KEY, multipart_threshold_bytes=64 * 1024 * 1024)
    config = StorageConfig(s3_stores=(store,))
    client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY_ID,
                          aws_secret_access_key=SECRET_ACCESS_KEY, config=Config(s3={"addressing_style": "path"}))
    url = f"s3://{BUCKET}/{key}"
    run_dir = Path(workdir) / "run"
    run_dir.mkdir()
    mapper = FileMapper(run_dir)
    result: dict = {}
    if variant == "upload-ours":
        job = Job("bench", 1, {"outputs": [{"path": "/out/data.bin", "url": url, "type": "FILE"}]}, str(run_dir))
        mapper.host_path("/out").mkdir(parents=True)
        os.link(src, mapper.host_path("/out/data.bin"))  # the task's output, without copying it
        from tes_cts.storage import storage_for
        storage_for(url, config)  # the client, made before the clock starts (like boto3's below)
        before, start = _rss_mib(), time.perf_counter()
        staged = stage_outputs(job, mapper, config)
        seconds = time.perf_counter() - start
        assert not staged.missing, staged.missing
        result["crc64nvme"] = staged.outputs[0]["crc64nvme"]
    elif variant == "upload-boto3":
        before, start = _rss_mib(), time.perf_counter()
        client.upload_file(src, BUCKET, key)
        seconds = time.perf_counter() - start
    elif variant == "upload-boto3-crc64nvme":
        before, start = _rss_mib(), time.perf_counter()
        client.upload_file(src, BUCKET, key, ExtraArgs={"ChecksumAlgorithm": "CRC64NVME"})
        seconds = time.perf_counter() - start
    elif variant == "download-ours":
        inputs = [{"path": "/in/data.bin", "url": url, "type": "FILE"}]
        job = Job("bench", 1, {"inputs": inputs}, str(run_dir))
        verified = preflight_inputs(inputs, config).verified  # what the poller records
        before, start = _rss_mib(), time.perf_counter()
        stage_inputs(job, mapper, config, verified)
        seconds = time.perf_counter() - start
        result["dest"] = str(mapper.host_path("/in/data.bin"))
    elif variant == "download-boto3":
        dest = run_dir / "data.bin"
        before, start = _rss_mib(), time.perf_counter()
        client.download_file(BUCKET, key, str(dest))
        seconds = time.perf_counter() - start
        result["dest"] = str(dest)
    elif variant == "download-boto3-get-object":
        dest = run_dir / "data.bin"
        before, start = _rss_mib(), time.perf_counter()
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"]
        with open(dest, "wb") as handle:
            shutil.copyfileobj(body, handle, MIB)
        seconds = time.perf_counter() - start
        result["dest"] = str(dest)
    else:
        raise SystemExit(f"unknown variant {variant}")
    result.update(seconds=seconds, rss_before_mib=before, rss_peak_mib=_rss_mib())
    return result


# --- the run -----------------------------------------------------------------------------------


def _run_child(variant: str, endpoint: str, src: Path, tmp: Path, key: str) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"{variant}-", dir=tmp))
    argv = [sys.executable, __file__, "--child", variant, "--endpoint", endpoint, "--src", str(src),
            "--workdir", str(workdir), "--key", key]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"workdir": str(workdir)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the object (default 1024: 1 GiB)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each variant, alternating the order (default 1)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.endpoint, args.src, args.workdir, args.key)))
        return 0

    import boto3
    from botocore.config import Config
    from moto.server import ThreadedMotoServer

    from tes_cts.storage.checksums import crc64nvme_of_file

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="tes-cts-staging-bench-"))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY_ID,
                              aws_secret_access_key=SECRET_ACCESS_KEY, config=Config(s3={"addressing_style": "path"}))
        client.create_bucket(Bucket=BUCKET)
        src = tmp / "source.bin"
        with open(src, "wb") as handle:
            for _ in range(args.size_mib):
                handle.write(os.urandom(MIB))
        source_crc = crc64nvme_of_file(src).crc64nvme
        size = args.size_mib * MIB
        print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}; object {args.size_mib} MiB, "
              f"{args.rounds} round(s)", flush=True)
        results: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
        for round_number in range(args.rounds):
            order = [("upload-ours", "upload-boto3", "upload-boto3-crc64nvme"),
                     ("download-ours", "download-boto3", "download-boto3-get-object")]
            if round_number % 2:
                order = [pair[::-1] for pair in order]
            for pair in order:
                for variant in pair:
                    key = f"{variant}-{round_number}" if variant.startswith("upload") else f"upload-ours-{round_number}"
                    measured = _run_child(variant, endpoint, src, tmp, key)
                    if variant == "upload-ours":
                        assert measured["crc64nvme"] == source_crc, "the uploaded CRC64NVME is not the source's"
                    if "dest" in measured:
                        assert crc64nvme_of_file(measured["dest"]).crc64nvme == source_crc, f"{variant}: wrong bytes"
                    shutil.rmtree(measured["workdir"])
                    results[variant].append(measured)
                    print(f"  round {round_number + 1} {variant:15} {size / MIB / measured['seconds']:8.1f} MiB/s  "
                          f"peak RSS {measured['rss_peak_mib']:6.1f} MiB", flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}\n")
        print(_table(results, size))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _table(results: dict[str, list[dict]], size: int) -> str:
    def rate(variant: str) -> float:
        return statistics.median(size / MIB / r["seconds"] for r in results[variant])

    labels = {"download-ours": "tes-cts staging (stage_inputs)", "download-boto3": "boto3 download_file",
              "download-boto3-get-object": "boto3 get_object, body copied to a file",
              "upload-ours": "tes-cts staging (stage_outputs)", "upload-boto3": "boto3 upload_file",
              "upload-boto3-crc64nvme": "boto3 upload_file, ChecksumAlgorithm=CRC64NVME"}
    lines = ["| direction | variant | MiB/s | ours / this | peak RSS MiB | RSS before the transfer MiB |",
             "|---|---|---:|---:|---:|---:|"]
    for direction in ("download", "upload"):
        ours = rate(f"{direction}-ours")
        for variant in (v for v in VARIANTS if v.startswith(direction)):
            ratio = "" if variant.endswith("-ours") else f"{ours / rate(variant):.2f}"
            peak = max(r["rss_peak_mib"] for r in results[variant])
            before = max(r["rss_before_mib"] for r in results[variant])
            lines.append(f"| {direction} | {labels[variant]} | {rate(variant):.1f} | {ratio} | {peak:.1f} | {before:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
