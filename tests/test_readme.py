"""The README's settings reference and commands stay true to the code."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from tes_cts.settings import VALIDATORS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def setting_names() -> set[str]:
    return {name for validator in VALIDATORS for name in validator.names}


def test_every_setting_is_in_the_readme_with_its_environment_variable():
    for name in setting_names():
        variable = "TES_CTS_" + name.upper().replace(".", "__")
        # A table of settings (s3.stores) shows how its entries are named: VARIABLE__NAME__KEY.
        assert re.search(rf"\| `{re.escape(name)}` \| `{variable}(__[A-Z_]+)?` \|", README), f"{name} missing from README"


def test_the_readme_lists_no_setting_that_does_not_exist():
    listed = set(re.findall(r"^\| `([a-z0-9_.]+)` \| `TES_CTS_", README, re.MULTILINE))
    assert listed == setting_names()


def _commands(script: str) -> list[str]:
    """The shell commands of a script, one per line, without comments and blank lines."""
    lines = (line.split(" #")[0].strip() for line in script.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_ci_runs_the_readme_test_command():
    """CI installs as the README says, then ends with exactly the README's test command, so that
    its exit status is CI's."""
    command = re.search(r"Run the tests:\s*```sh\s*(.+?)\s*```", README, re.DOTALL).group(1)
    *install, test = [part.strip() for part in command.split("&&")]
    ci = _commands((ROOT / ".ci" / "run").read_text())
    assert ci[-1] == test
    assert install == ['pip install "poetry>=2.1,<3"', "poetry install"]
    assert any(line.endswith('pip install --quiet --disable-pip-version-check "poetry>=2.1,<3"') for line in ci)
    assert any(line.startswith("poetry install") for line in ci[:-1])


def test_settings_toml_has_the_four_environments():
    sections = tomllib.loads((ROOT / "settings.toml").read_text())
    assert {"default", "development", "testing", "production"} <= set(sections)
