"""Container image references, as the Docker reference grammar (distribution's `reference`
package) defines them: `[HOST[:PORT]/]PATH[:TAG][@DIGEST]`.

A task's `image` reaches the engine as a reference and nothing else: one that is not in the
grammar (`-h`, `--privileged`, spaces, upper case in the path) is refused where the task is
submitted, so that no engine command line can read it as an option.
"""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 255                      # the grammar's limit on HOST/PATH

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?")

EXAMPLE = "ubuntu:24.04"


def image_reference_problem(image: str) -> str | None:
    """Why `image` is not an image reference, or None if it is one."""
    match = _REFERENCE.fullmatch(image)
    if match is None:
        return f"is not a container image reference ([HOST[:PORT]/]NAME[:TAG][@DIGEST], e.g. \"{EXAMPLE}\"){_hint(image)}"
    if len(match["name"]) > MAX_NAME_LENGTH:
        return f"names a repository longer than {MAX_NAME_LENGTH} characters"
    return None


def _hint(image: str) -> str:
    last_component = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    if image.startswith("-"):
        return ": an image reference never starts with '-'"
    if any(character.isspace() for character in image):
        return ": it must not contain white space"
    if last_component != last_component.lower():
        return ": repository names are lower case"
    return ""
