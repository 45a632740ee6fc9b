"""Compute backends behind one submit/poll/cancel contract; one module each."""

# backend kind -> the tesResources.backend_parameters keys it honours (lower case).
# A key is listed only once the backend really acts on it.
BACKEND_PARAMETERS: dict[str, tuple[str, ...]] = {
    "local": ("runtime",),
    "htcondor": ("runtime", "requirements"),
}


def supported_backend_parameters(kind: str) -> tuple[str, ...]:
    return BACKEND_PARAMETERS[kind]
