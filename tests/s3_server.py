"""An S3 endpoint for tests: moto's server on 127.0.0.1, spoken to over real HTTP.

`s3_endpoint` (one server per test session), `s3_bucket` (a fresh bucket per test, emptied
afterwards), `s3_store` (an S3StoreConfig of that endpoint, the default store), `s3_client`
(plain boto3, to arrange and inspect objects behind the code under test). Import the fixtures
into a test module: `from .s3_server import s3_bucket, s3_client, s3_endpoint, s3_store`.

moto accepts any credentials unless told otherwise: `rejecting_credentials(endpoint)` turns its
IAM authentication on for the duration of a `with` block.
"""

from __future__ import annotations

import base64
import logging
import uuid
from contextlib import contextmanager

import boto3
import pytest
import requests
from awscrt.checksums import crc64nvme
from botocore.config import Config

from tes_cts.storage.config import S3StoreConfig

REGION = "us-east-1"
ACCESS_KEY_ID = "tes-cts-test-key"
SECRET_ACCESS_KEY = "tes-cts-test-secret-4f1c"  # tests assert it never shows up in a message


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def make_client(endpoint: str, access_key_id: str = ACCESS_KEY_ID, secret: str = SECRET_ACCESS_KEY):
    config = Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                    response_checksum_validation="when_required", retries={"mode": "standard", "max_attempts": 2})
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=access_key_id,
                        aws_secret_access_key=secret, config=config)


@pytest.fixture(scope="session")
def s3_client(s3_endpoint):
    return make_client(s3_endpoint)


@pytest.fixture
def s3_bucket(s3_client):
    name = f"t-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    # Free the server's memory; a test may have deleted the bucket itself.
    try:
        for upload in s3_client.list_multipart_uploads(Bucket=name).get("Uploads", []):
            s3_client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                s3_client.delete_object(Bucket=name, Key=item["Key"])
        s3_client.delete_bucket(Bucket=name)
    except s3_client.exceptions.NoSuchBucket:
        pass


@pytest.fixture
def s3_store(s3_endpoint):
    return make_store(s3_endpoint)


def make_store(endpoint: str, **changes) -> S3StoreConfig:
    values = dict(name="default", endpoint_url=endpoint, region=REGION, access_key_id=ACCESS_KEY_ID,
                  secret_access_key=SECRET_ACCESS_KEY, max_attempts=2,
                  multipart_threshold_bytes=64 * 1024 * 1024)
    values.update(changes)
    return S3StoreConfig(**values)


def crc_of(data: bytes) -> str:
    """CRC64NVME in the S3 form, computed independently of tes_cts.storage.checksums."""
    return base64.b64encode(crc64nvme(data).to_bytes(8, "big")).decode()


def put_verified(client, bucket: str, key: str, data: bytes, **more) -> dict:
    """An object as the CTS wants it: uploaded with a CRC64NVME."""
    return client.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm="CRC64NVME", **more)


@contextmanager
def rejecting_credentials(endpoint: str):
    """moto checks credentials (IAM authentication) inside the block: unknown keys are refused."""
    previous = requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10).json()
    try:
        yield
    finally:
        requests.post(f"{endpoint}/moto-api/reset-auth",
                      data=previous["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"].encode(), timeout=10)
