"""Derive tests/spec_data/tes-1.1.0-facts.json from the upstream TES v1.1 OpenAPI document.

Usage, from the repository root::

    python tests/spec_data/derive_tes_facts.py PATH/TO/tes-1.1.0.openapi.yaml [--output FILE]

``tests/test_spec_compat.py`` compares ``openapi/tes.yaml`` against the facts file, so the tests
need no file outside the repository.  The facts file is generated: rerun this script instead of
editing it.  It holds:

* ``spec``: the whole upstream document (mapping keys as strings, ``200:`` -> ``"200"``) minus
  every prose key the comparison ignores: ``description``, ``example``, ``title``, ``summary``
  and ``x-*``.  Names of properties (tesTask has a property called ``description``) are data and
  stay.  Everything else stays: schemas, fields, types, formats, required lists, enums, ``$ref``s,
  defaults, operations, parameters, responses.
* ``prose_fingerprints``: for every upstream description, summary or title longer than
  ``COPY_THRESHOLD`` characters after whitespace normalisation, and every sentence of one that
  long, its length and SHA-256 digest.  The copied-prose check hashes windows of our prose
  against them; no upstream prose is stored.
* ``source`` (upstream file name and SHA-256) and ``generated_by``, so a reader knows where the
  file came from.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = REPO_ROOT / "tests" / "spec_data" / "tes-1.1.0-facts.json"

# Run as a script, so tests/ is not importable yet; the prose rules live in one place, there.
sys.path.insert(0, str(REPO_ROOT))
from tests.spec_diff import COPY_THRESHOLD, load_spec, prose_fingerprints, strip_prose  # noqa: E402


def build_facts(upstream_path: Path) -> dict:
    upstream = load_spec(upstream_path)
    return {
        "generated_by": "tests/spec_data/derive_tes_facts.py (do not edit; rerun it on the upstream file)",
        "source": {
            "file": upstream_path.name,
            "sha256": hashlib.sha256(upstream_path.read_bytes()).hexdigest(),
        },
        "prose_fingerprints": {
            "threshold": COPY_THRESHOLD,
            "normalisation": "whitespace runs replaced by one space, ends stripped",
            "hash": "sha256 of the UTF-8 text; length in characters",
            "length_by_sha256": {fp.sha256: fp.length for fp in prose_fingerprints(upstream)},
        },
        "spec": strip_prose(upstream),
    }


def write_facts(facts: dict, output: Path) -> None:
    text = json.dumps(facts, sort_keys=True, indent=2, ensure_ascii=True)
    output.write_text(text + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream", type=Path, help="the upstream tes-1.1.0.openapi.yaml")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"where to write the facts (default: {DEFAULT_OUTPUT.relative_to(REPO_ROOT)})")
    args = parser.parse_args(argv)
    write_facts(build_facts(args.upstream), args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
