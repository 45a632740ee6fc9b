"""What a URL scheme declares about itself (`SchemeInfo`), and the use a URL is checked for
(`UrlUse`).

Each scheme module declares its own and says what is wrong with a URL of its scheme; the registry
in `storage/__init__` lists every declaration once, and validation asks it (`url_problems`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

INPUT = "input"
OUTPUT = "output"
INPUTS_AND_OUTPUTS = frozenset({INPUT, OUTPUT})
INPUTS_ONLY = frozenset({INPUT})


@dataclass(frozen=True)
class UrlUse:
    direction: str  # INPUT or OUTPUT
    directory: bool  # the url names a directory (type DIRECTORY, or an output with wildcards)
    file_roots: tuple[str, ...]  # where file URLs and bare paths may point; empty: nowhere
    http_allow: tuple[str, ...] = ()  # non-public hosts and networks http(s) URLs may reach


@dataclass(frozen=True)
class SchemeInfo:
    name: str  # lower case, as written before "://"; "" is a bare absolute path
    example: str  # how messages listing the accepted schemes show it
    directions: frozenset[str]
    url_problems: Callable[[str, UrlUse], list[str]]  # what is wrong with a URL of this scheme
    needs_file_roots: bool = False  # the server's own files: offered only where roots are set

    def offered_for(self, use: UrlUse) -> bool:
        return use.direction in self.directions and (bool(use.file_roots) or not self.needs_file_roots)
