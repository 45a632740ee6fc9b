"""The Connexion application: the project's spec served at /ga4gh/tes/v1 and /v1."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import connexion
import flask
import yaml
from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem, ProblemException, Unauthorized
from connexion.jsonifier import Jsonifier
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from connexion.validators import VALIDATOR_MAP, JSONRequestBodyValidator
from starlette.middleware.cors import CORSMiddleware

from ..auth.config import build_providers
from ..auth.identity import Identity, RoleMissing
from ..auth.none import LOCAL_USER
from ..database.base import DatabaseUnavailable
from ..model.views import JSON_SEPARATORS
from ..tasks.paging import BadListRequest
from ..tasks.service import TaskNotFound, TaskService
from ..tasks.validation import TaskValidationError
from . import errors, handlers, security
from .body_limit import BodyLimitMiddleware
from .parameters import InvalidParameters, NamingParameterValidator
from .request_path import ControlCharacterPaths

log = logging.getLogger("tes_cts.api")
SPEC_FILE = Path(__file__).resolve().parent.parent.parent / "openapi" / "tes.yaml"
BASE_PATHS = ("/ga4gh/tes/v1", "/v1")
SWAGGER_UI_PATH = BASE_PATHS[0] + "/ui/"
CORS_MAX_AGE_S = 600  # how long browsers may reuse a preflight answer


class TaskBodyPassthrough(JSONRequestBodyValidator):
    """Parses the JSON body but leaves checking it to `tasks.validation`, which reports every
    problem at once with its field; the schema validator would stop at the first."""

    async def _parse(self, stream, scope):
        try:
            return await super()._parse(stream, scope)
        except UnicodeDecodeError as exc:
            raise BadRequestProblem(detail=f"request body is not valid {self._encoding}: {exc.reason}") from None
        except RecursionError:
            raise BadRequestProblem(detail="request body is not JSON this server reads: nested too deeply") from None
        except ValueError as exc:  # parsed, but not representable: an integer of more than 4,300 digits
            raise BadRequestProblem(detail=f"request body is not JSON this server reads: {exc}") from None

    def _validate(self, body):
        return body


@dataclass
class AppState:
    """What the handlers reach through the Flask app (`handlers.EXTENSION_KEY`)."""

    service: TaskService
    service_info: dict
    anonymous: Identity | None  # the caller when no provider checks credentials (`none`)


def create_app(settings, service: TaskService, service_info: dict) -> connexion.FlaskApp:
    """The API over `service`, answering `service_info` at /service-info, with the auth, CORS
    and body-size settings applied. `wiring.build_app` builds both from settings."""
    providers = build_providers(settings)
    app = _connexion_app()
    _add_apis(app, providers)
    if settings.cors.allow_origins:  # outermost, so that error answers carry CORS headers too
        _add_cors(app, list(settings.cors.allow_origins))
    app.add_middleware(BodyLimitMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION,
                       max_body_bytes=settings.server.max_body_bytes)
    app.add_middleware(ControlCharacterPaths, position=MiddlewarePosition.BEFORE_EXCEPTION)
    _add_error_handlers(app, list(providers))
    flask_app = app.app
    flask_app.extensions[handlers.EXTENSION_KEY] = AppState(service, service_info,
                                                            anonymous=None if providers else LOCAL_USER)
    _add_redirects_to_swagger_ui(flask_app)
    return app


def _connexion_app() -> connexion.FlaskApp:
    validators = dict(VALIDATOR_MAP)
    validators["parameter"] = NamingParameterValidator
    validators["body"] = MediaTypeDict({**VALIDATOR_MAP["body"], "*/*json": TaskBodyPassthrough})
    return connexion.FlaskApp(
        __name__,
        specification_dir=str(SPEC_FILE.parent),
        resolver=Resolver(function_resolver=lambda operation_id: handlers.OPERATIONS[operation_id]),
        validator_map=validators,
        swagger_ui_options=SwaggerUIOptions(swagger_ui=True),
        jsonifier=Jsonifier(json, separators=JSON_SEPARATORS),  # Connexion indents by default
    )


def _add_apis(app: connexion.FlaskApp, providers: dict) -> None:
    """The spec, with the enabled providers' security, under each base path."""
    spec = security.effective_spec(yaml.safe_load(SPEC_FILE.read_text()), providers)
    for base_path in BASE_PATHS:
        app.add_api(spec, base_path=base_path, name=base_path.strip("/").replace("/", "_"),
                    security_map=security.security_map(providers))


def _add_cors(app: connexion.FlaskApp, allow_origins: list[str]) -> None:
    app.add_middleware(
        CORSMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        allow_origins=allow_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
        expose_headers=["WWW-Authenticate"],
        max_age=CORS_MAX_AGE_S,
    )


def _add_redirects_to_swagger_ui(flask_app: flask.Flask) -> None:
    for rule, endpoint in (("/", "root"), ("/ui", "ui"), ("/ui/", "ui_slash")):
        flask_app.add_url_rule(rule, endpoint, lambda: flask.redirect(SWAGGER_UI_PATH))


def _add_error_handlers(app: connexion.FlaskApp, provider_names: list[str]) -> None:
    """Every error answer in the one shape of `errors`."""

    def validation_failed(_request, exc: TaskValidationError):
        return errors.field_errors_response([(p.field, p.reason) for p in exc.problems])

    def bad_list_request(_request, exc: BadListRequest):
        return errors.field_errors_response([(exc.field, exc.reason)])

    def database_unavailable(_request, exc: DatabaseUnavailable):
        return errors.error_response(503, "Service Unavailable", f"{exc}; retry later")

    def invalid_parameters(_request, exc: InvalidParameters):
        return errors.field_errors_response(exc.problems)

    def problem(_request, exc: ProblemException):
        return errors.error_response(exc.status, exc.title, exc.detail or exc.title)

    def unexpected(_request, exc: Exception):
        log.exception("unexpected error answering a request", exc_info=exc)
        return errors.error_response(500, "Internal Server Error",
                                     "the server failed to answer this request; the failure is in its log")

    app.add_error_handler(TaskValidationError, validation_failed)
    app.add_error_handler(BadListRequest, bad_list_request)
    app.add_error_handler(TaskNotFound, errors.not_found)
    app.add_error_handler(DatabaseUnavailable, database_unavailable)
    app.add_error_handler(InvalidParameters, invalid_parameters)
    app.add_error_handler(ProblemException, problem)
    auth_failed = security.auth_failed_handler(provider_names)
    app.add_error_handler(Unauthorized, auth_failed)
    app.add_error_handler(security.AuthProblem, auth_failed)
    app.add_error_handler(RoleMissing, security.role_missing)
    app.add_error_handler(Exception, unexpected)
