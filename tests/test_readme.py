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


def test_ci_runs_the_readme_test_command():
    command = re.search(r"Run the tests:\s*```sh\s*(.+?)\s*```", README, re.DOTALL).group(1)
    ci = (ROOT / ".ci" / "run").read_text()
    assert command.split("&&")[-1].strip() in ci


def test_settings_toml_has_the_four_environments():
    sections = tomllib.loads((ROOT / "settings.toml").read_text())
    assert {"default", "development", "testing", "production"} <= set(sections)
