"""Query and path parameter checking that names each bad parameter and reports them all."""

from __future__ import annotations

import copy

from connexion.exceptions import BadRequestProblem
from connexion.utils import is_null, is_nullable
from connexion.validators import ParameterValidator
from jsonschema import Draft4Validator, ValidationError


class InvalidParameters(BadRequestProblem):
    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__(detail="; ".join(f"{name}: {reason}" for name, reason in problems))
        self.problems = problems


class NamingParameterValidator(ParameterValidator):
    _SOURCES = {
        "query": lambda request, name: request.query_params.get(name),
        "path": lambda request, name: request.path_params.get(name.replace("-", "_")),
        "header": lambda request, name: request.headers.get(name),
        "cookie": lambda request, name: request.cookies.get(name),
    }

    def validate_request(self, request):
        problems = []
        for location, read in self._SOURCES.items():
            for param in self.parameters.get(location, []):
                reason = _reason(read(request, param["name"]), param)
                if reason:
                    problems.append((param["name"], reason))
        if problems:
            raise InvalidParameters(problems)


def _reason(value, param: dict) -> str | None:
    if is_nullable(param) and is_null(value):
        return None
    if value is None:
        return "is required" if param.get("required") else None
    schema = copy.deepcopy(param.get("schema", param))
    try:
        Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER).validate(value)
    except ValidationError as exc:
        return exc.message
    return None
