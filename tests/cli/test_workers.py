"""What ``berkas serve --workers`` hands a worker process on its command line."""

from __future__ import annotations

import click
import pytest

from berkas.cli.workers import WorkerSpec


def test_a_worker_spec_survives_its_command_line() -> None:
    spec = WorkerSpec(worker=3, wanted=-1, listen=5, metrics=-1, lock=6, life=7, ready=11)
    assert WorkerSpec.decode(spec.encode()) == spec
    wanted = WorkerSpec(worker=0, wanted=9999, listen=3, metrics=4, lock=5, life=6, ready=8)
    assert WorkerSpec.decode(wanted.encode()) == wanted


@pytest.mark.parametrize("text", ["", "1,2,3", "1,2,3,4,5,6,7,8", "a,b,c,d,e,f,g", "1;2;3;4;5;6;7"])
def test_a_malformed_worker_spec_is_refused_as_berkas_own(text: str) -> None:
    with pytest.raises(click.BadParameter, match="passed by berkas serve --workers"):
        WorkerSpec.decode(text)
