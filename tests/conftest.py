"""Session fixtures shared by the adapter and end-to-end suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.rgw import Rgw, throwaway_rgw


@pytest.fixture(scope="session")
def rgw() -> Iterator[Rgw]:
    """One throwaway Ceph RGW for the whole session (started on first use)."""
    with throwaway_rgw() as gateway:
        yield gateway
