"""The project's docs stay true to the code and stand on their own."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def named_paths(text: str) -> set[str]:
    """Every `tes_cts/...` path in backticks, and every `name.py` in a table row that names a
    package first (a module of that package)."""
    paths = set(re.findall(r"`(tes_cts/[\w/]*(?:\.py)?)`", text))
    for row in re.findall(r"^\| `(tes_cts/[\w/]+/)`[^|]*\|(.+)\|$", text, re.MULTILINE):
        package, owns = row
        paths |= {package + module for module in re.findall(r"`(\w+\.py)`", owns)}
    return paths


def test_every_package_and_module_the_architecture_names_exists():
    paths = named_paths(ARCHITECTURE.read_text())
    assert len(paths) > 30  # the map names the packages and their modules
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names what does not exist: {missing}"


def test_every_package_is_on_the_map():
    packages = {f"tes_cts/{p.name}/" for p in (ROOT / "tes_cts").iterdir() if (p / "__init__.py").exists()}
    assert packages <= named_paths(ARCHITECTURE.read_text())


def test_the_readme_links_the_architecture():
    assert "(docs/architecture.md)" in (ROOT / "README.md").read_text()


def test_nothing_in_the_repository_reaches_outside_it():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    # Built from parts so that this file does not match itself.
    outside = re.compile(r"\.\./" + "shared")
    found = [name for name in tracked if (ROOT / name).is_file() and name.endswith((".py", ".md", ".toml", ".yaml", ".yml", ".json"))
             and outside.search((ROOT / name).read_text(errors="replace"))]
    assert not found, f"files that read or link a path outside the repository: {found}"
