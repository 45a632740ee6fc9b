"""The error every start-up check raises for a setting it cannot use.

A leaf: `settings` and each package that checks its own settings (`auth`, the composition root)
import it, so none of them has to import another to say a setting is wrong.
"""

from __future__ import annotations


class SettingsError(Exception):
    """The settings cannot be used; the message says which one and why."""


class InvalidSettings(SettingsError):
    """A setting's value cannot be used. Every such message starts with the same words, so that
    an operator reading a failed start recognizes it: "invalid settings: <setting> ..."."""

    PREFIX = "invalid settings: "

    def __init__(self, problem: str):
        super().__init__(self.PREFIX + problem)
