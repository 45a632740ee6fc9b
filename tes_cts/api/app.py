"""The Connexion application: the project's spec served at /ga4gh/tes/v1 and /v1."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import connexion
import flask
import yaml
from connexion.datastructures import MediaTypeDict
from connexion.exceptions import ProblemException, Unauthorized
from connexion.jsonifier import Jsonifier
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from connexion.validators import VALIDATOR_MAP
from starlette.middleware.cors import CORSMiddleware

from ..auth.config import build_providers
from ..auth.identity import Identity, RoleMissing
from ..auth.none import LOCAL_USER
from ..dashboard import dashboard_blueprint
from ..database.base import DatabaseUnavailable
from ..metrics.exposition import Scrape
from ..model.views import JSON_SEPARATORS
from ..tasks.log_access import ExecutorLogNotFound
from ..tasks.paging import BadListRequest
from ..tasks.service import TaskNotFound, TaskService
from ..tasks.validation import TaskValidationError
from . import errors, handlers, security
from .body_limit import BodyLimitMiddleware
from .event_stream import EventStream
from .http_metrics import HttpMetrics, operation_routes
from .log_parts import SIZE_HEADER, RangeNotSatisfiable, unsatisfiable_headers
from .operational import BackendCheck, OperationalEndpoints
from .parameters import InvalidParameters, NamingParameterValidator
from .request_path import ControlCharacterPaths
from .task_body import GatheredBody

log = logging.getLogger("tes_cts.api")
SPEC_FILE = Path(__file__).resolve().parent.parent.parent / "openapi" / "tes.yaml"
EXTENSIONS_FILE = SPEC_FILE.with_name("extensions.yaml")  # our operations beyond TES, merged into it
BASE_PATHS = ("/ga4gh/tes/v1", "/v1")
SWAGGER_UI_PATH = BASE_PATHS[0] + "/ui/"
CORS_MAX_AGE_S = 600  # how long browsers may reuse a preflight answer


@dataclass
class AppState:
    """What the handlers reach through the Flask app (`handlers.EXTENSION_KEY`)."""

    service: TaskService
    service_info: dict
    anonymous: Identity | None  # the caller when no provider checks credentials (`none`)


def create_app(settings, service: TaskService, service_info: dict, backend: BackendCheck,
               scrape: Scrape | None = None) -> connexion.FlaskApp:
    """The API over `service`, answering `service_info` at /service-info, with the auth, CORS
    and body-size settings applied; /healthz, /readyz (asking `backend`) and, given `scrape`,
    /metrics beside it. `wiring.build_app` builds them from settings."""
    providers = build_providers(settings)
    app = _connexion_app()
    spec = served_spec()
    _add_apis(app, spec, providers)
    if settings.cors.allow_origins:  # outermost, so that error answers carry CORS headers too
        _add_cors(app, list(settings.cors.allow_origins))
    # Outside the rest: the operational endpoints are not the API's (nor counted); every other
    # answer is counted, a 413 of the body limit included.
    app.add_middleware(OperationalEndpoints, position=MiddlewarePosition.BEFORE_EXCEPTION, database=service.database,
                       backend=backend, scrape=scrape, token_digest=settings.metrics.token_digest)
    app.add_middleware(HttpMetrics, position=MiddlewarePosition.BEFORE_EXCEPTION, routes=operation_routes(spec))
    app.add_middleware(BodyLimitMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION,
                       max_body_bytes=settings.server.max_body_bytes)
    app.add_middleware(ControlCharacterPaths, position=MiddlewarePosition.BEFORE_EXCEPTION)
    # After routing, security and validation: the stream is answered there, off the WSGI threads.
    app.add_middleware(EventStream, position=MiddlewarePosition.BEFORE_CONTEXT, database=service.database,
                       anonymous=None if providers else LOCAL_USER)
    _add_error_handlers(app, list(providers))
    flask_app = app.app
    flask_app.extensions[handlers.EXTENSION_KEY] = AppState(service, service_info,
                                                            anonymous=None if providers else LOCAL_USER)
    _add_redirects_to_swagger_ui(flask_app)
    anonymous = None if providers else LOCAL_USER
    flask_app.register_blueprint(dashboard_blueprint(service, partial(security.identify, providers, anonymous),
                                                     list(providers), BASE_PATHS[0], SWAGGER_UI_PATH))
    return app


def _connexion_app() -> connexion.FlaskApp:
    validators = dict(VALIDATOR_MAP)
    validators["parameter"] = NamingParameterValidator
    validators["body"] = MediaTypeDict({**VALIDATOR_MAP["body"], "*/*json": GatheredBody})
    return connexion.FlaskApp(
        __name__,
        specification_dir=str(SPEC_FILE.parent),
        resolver=Resolver(function_resolver=lambda operation_id: handlers.OPERATIONS[operation_id]),
        validator_map=validators,
        swagger_ui_options=SwaggerUIOptions(swagger_ui=True),
        jsonifier=Jsonifier(json, separators=JSON_SEPARATORS),  # Connexion indents by default
    )


def _add_apis(app: connexion.FlaskApp, spec: dict, providers: dict) -> None:
    """The spec and our extensions, with the enabled providers' security, under each base path."""
    spec = security.effective_spec(spec, providers)
    for base_path in BASE_PATHS:
        app.add_api(spec, base_path=base_path, name=base_path.strip("/").replace("/", "_"),
                    security_map=security.security_map(providers))


def served_spec() -> dict:
    """tes.yaml with the paths of extensions.yaml added: one document, one security, one UI."""
    spec = yaml.safe_load(SPEC_FILE.read_text())
    spec["paths"].update(yaml.safe_load(EXTENSIONS_FILE.read_text())["paths"])
    return spec


def _add_cors(app: connexion.FlaskApp, allow_origins: list[str]) -> None:
    app.add_middleware(
        CORSMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        allow_origins=allow_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "Range"],  # Range: the logs extension's parts
        expose_headers=["WWW-Authenticate", "Content-Range", SIZE_HEADER],
        max_age=CORS_MAX_AGE_S,
    )


def _add_redirects_to_swagger_ui(flask_app: flask.Flask) -> None:
    for rule, endpoint in (("/ui", "ui"), ("/ui/", "ui_slash")):  # "/" is the dashboard's start page
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

    def range_not_satisfiable(_request, exc: RangeNotSatisfiable):
        return errors.error_response(416, "Range Not Satisfiable", str(exc), headers=unsatisfiable_headers(exc.size))

    def problem(_request, exc: ProblemException):
        return errors.error_response(exc.status, exc.title, exc.detail or exc.title)

    def unexpected(_request, exc: Exception):
        log.exception("unexpected error answering a request", exc_info=exc)
        return errors.error_response(500, "Internal Server Error",
                                     "the server failed to answer this request; the failure is in its log")

    app.add_error_handler(TaskValidationError, validation_failed)
    app.add_error_handler(BadListRequest, bad_list_request)
    app.add_error_handler(TaskNotFound, errors.not_found)
    app.add_error_handler(ExecutorLogNotFound, errors.not_found)
    app.add_error_handler(RangeNotSatisfiable, range_not_satisfiable)
    app.add_error_handler(DatabaseUnavailable, database_unavailable)
    app.add_error_handler(InvalidParameters, invalid_parameters)
    app.add_error_handler(ProblemException, problem)
    auth_failed = security.auth_failed_handler(provider_names)
    app.add_error_handler(Unauthorized, auth_failed)
    app.add_error_handler(security.AuthProblem, auth_failed)
    app.add_error_handler(RoleMissing, security.role_missing)
    app.add_error_handler(Exception, unexpected)
