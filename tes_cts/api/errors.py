"""Every error response has one shape: {title, status, detail, errors: [{field, reason}]}."""

from __future__ import annotations

import json

from connexion.lifecycle import ConnexionRequest, ConnexionResponse

ERROR_MEDIA_TYPE = "application/json"


def error_body(status: int, title: str, detail: str, errors: list[dict] | None = None) -> dict:
    body = {"title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return body


async def send_error(send, status: int, title: str, detail: str) -> None:
    """The error body, answered by an ASGI middleware itself, before any app sees the request."""
    body = json.dumps(error_body(status, title, detail)).encode()
    headers = [(b"content-type", ERROR_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def error_response(status: int, title: str, detail: str, errors: list[dict] | None = None,
                   headers: dict[str, str] | None = None) -> ConnexionResponse:
    return ConnexionResponse(
        status_code=status,
        body=json.dumps(error_body(status, title, detail, errors)),
        content_type=ERROR_MEDIA_TYPE,
        headers=headers,
    )


def field_errors_response(problems: list[tuple[str, str]]) -> ConnexionResponse:
    errors = [{"field": field, "reason": reason} for field, reason in problems]
    summary = "; ".join(f"{field}: {reason}" for field, reason in problems)
    return error_response(400, "Bad Request", summary, errors)


def not_found(_request: ConnexionRequest, exc) -> ConnexionResponse:
    return error_response(404, "Not Found", str(exc))
