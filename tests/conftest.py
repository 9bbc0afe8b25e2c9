"""Session fixtures shared by the adapter and end-to-end suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.rgw import Rgw, throwaway_rgw
from tests.support.vectors import report_lines


@pytest.fixture(scope="session")
def rgw() -> Iterator[Rgw]:
    """One throwaway Ceph RGW for the whole session (started on first use)."""
    with throwaway_rgw() as gateway:
        yield gateway


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The hostile-input tally (tests/support/vectors.py): tried, accepted, refused, 5xx."""
    lines = report_lines()
    if lines:
        terminalreporter.section("hostile input: vectors per family")
        for line in lines:
            terminalreporter.write_line(line)
