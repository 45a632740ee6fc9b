"""Durations as users write them, and as reasons show them."""

import pytest

from tes_cts.durations import describe_duration, parse_duration


@pytest.mark.parametrize("text,seconds", [("600", 600), ("1.5", 1.5), ("PT10M", 600), ("pt1h30m", 5400),
                                          ("P1DT2H", 93600), ("PT0.5S", 0.5), (" 45 ", 45)])
def test_accepted_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "abc", "-5", "0", "P1Y", "nan", "inf", "10 minutes"])
def test_refused_durations_say_what_is_accepted(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("seconds,shown", [(45, "45s"), (600, "10m"), (5400, "1h30m"), (3600, "1h"),
                                           (3661, "1h1m1s"), (2.5, "2.5s"), (0, "0s"), (93600, "1d2h")])
def test_described_durations(seconds, shown):
    assert describe_duration(seconds) == shown
