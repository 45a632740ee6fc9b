"""The service-info document, built once at start from settings and what the composition root
resolved from them (the storage configuration, the backend's parameters)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import __version__
from ..settings import environment_name

if TYPE_CHECKING:
    from ..storage.config import StorageConfig

TES_SERVICE_TYPE = {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"}


def build_service_info(settings, storage: StorageConfig, backend_parameters: Sequence[str], started_at: str) -> dict:
    service = settings.service
    info = {
        "id": service.id,
        "name": service.name,
        "type": dict(TES_SERVICE_TYPE),
        "description": service.description,
        "organization": {"name": service.organization_name, "url": service.organization_url},
        "createdAt": started_at,
        "updatedAt": started_at,
        "environment": environment_name(settings),
        "version": __version__,
        "storage": storage_locations(storage),
        "tesResources_backend_parameters": list(backend_parameters),
    }
    if service.contact_url:
        info["contactUrl"] = service.contact_url
    if service.documentation_url:
        info["documentationUrl"] = service.documentation_url
    return info


def storage_locations(config: StorageConfig) -> list[str]:
    """Where inputs may come from and outputs may go: the configured S3 buckets (`s3://` when a
    store takes any bucket), the file roots, and http(s) for inputs."""
    buckets = [f"s3://{bucket}" for store in config.s3_stores for bucket in store.buckets]
    if any(not store.buckets for store in config.s3_stores):
        buckets.append("s3://")
    roots = [f"file://{root}" for root in config.file_roots]
    return buckets + roots + ["http://", "https://"]
