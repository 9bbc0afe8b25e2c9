"""Wire conventions: times with a Z, caller text quoted and cut short in messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from berkas.core.wire import API_PREFIX, iso8601, quoted, spoken


def test_times_are_utc_with_a_z_whatever_zone_they_come_in() -> None:
    jakarta = timezone(timedelta(hours=7))
    moment = datetime(2026, 11, 27, 15, 45, 42, 123456, tzinfo=jakarta)
    assert iso8601(moment) == "2026-11-27T08:45:42.123456Z"
    assert iso8601(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00Z"


def test_a_naive_time_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="naive"):
        iso8601(datetime(2026, 1, 1))


def test_caller_text_is_quoted_as_json_and_cut_short() -> None:
    assert quoted("KTP") == '"KTP"'
    assert quoted(12) == "12"
    assert quoted(None) == "null"
    assert quoted("\u202e\n") == '"\\u202e\\n"'  # no control or bidi characters leak
    long = quoted("x" * 500)
    assert len(long) == 40
    assert long.endswith("…")
    assert quoted(object()) == "<object>"


def test_the_base_path_is_dokus() -> None:
    assert API_PREFIX == "/adv-core-api/partner/v1.0"


@pytest.mark.parametrize(
    ("duration", "said"),
    [
        (timedelta(days=40), "40 days"),
        (timedelta(days=1, hours=6), "1 day 6 hours"),
        (timedelta(seconds=90), "1 minute 30 seconds"),
        (timedelta(hours=1, seconds=1), "1 hour 1 second"),
        (timedelta(0), "0 seconds"),
        (timedelta(milliseconds=400), "0 seconds"),
        (-timedelta(minutes=2), "-2 minutes"),
    ],
)
def test_a_duration_is_spoken_as_a_person_says_it(duration: timedelta, said: str) -> None:
    assert spoken(duration) == said
