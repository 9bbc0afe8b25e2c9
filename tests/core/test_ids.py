"""File ids: format, node numbers, and uniqueness under concurrency and clock steps."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from berkas.core.catalogue import Category
from berkas.core.ids import ID_PATTERN, IdMinter, MintedId, is_file_id, node_of

NOW_MS = 1_676_639_713_907  # the epoch ms in DOKU's example id CNT-0104-1676639713907


def _fixed(ms: int) -> Callable[[], int]:
    return lambda: ms


def test_minted_id_has_the_doku_layout() -> None:
    minted = IdMinter(104, _fixed(NOW_MS)).mint(Category.OWNER_LIVENESS.id_prefix)
    assert minted == MintedId(id="CNT-0104-1676639713907", epoch_ms=NOW_MS)
    assert ID_PATTERN.fullmatch(minted.id)
    assert is_file_id(minted.id)


def test_node_and_small_clock_values_are_zero_padded() -> None:
    minted = IdMinter(7, _fixed(42)).mint("DCM")
    assert minted.id == "DCM-0007-0000000000042"
    assert is_file_id(minted.id)


@pytest.mark.parametrize(
    "value",
    [
        "CNT-0104-1676639713907",
        "DCM-9999-0000000000000",
    ],
)
def test_is_file_id_accepts(value: str) -> None:
    assert is_file_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "cnt-0104-1676639713907",
        "CNT-104-1676639713907",
        "CNT-0104-167663971390",
        "CNT-0104-16766397139070",
        "CNTX-0104-1676639713907",
        "CNT-0104-1676639713907\n",
        "CNT-0104-167663971390\u0667",  # ARABIC-INDIC DIGIT SEVEN
        "../CNT-0104-1676639713907",
        "",
    ],
)
def test_is_file_id_rejects(value: str) -> None:
    assert not is_file_id(value)


@pytest.mark.parametrize("node", [-1, 10_000, True, 1.0])
def test_node_outside_0_to_9999_is_refused(node: object) -> None:
    with pytest.raises(ValueError, match="0 to 9999"):
        IdMinter(node, _fixed(NOW_MS))  # type: ignore[arg-type]


@pytest.mark.parametrize("node", [0, 9999])
def test_node_bounds_are_accepted(node: int) -> None:
    assert is_file_id(IdMinter(node, _fixed(NOW_MS)).mint("DCM").id)


@pytest.mark.parametrize("prefix", ["", "DC", "DCMX", "dcm", "D-M"])
def test_bad_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="three upper-case letters"):
        IdMinter(1, _fixed(NOW_MS)).mint(prefix)


def test_epoch_beyond_13_digits_is_refused() -> None:
    with pytest.raises(ValueError, match="13 digits"):
        IdMinter(1, _fixed(10**13)).mint("DCM")


def test_same_millisecond_gives_increasing_ids() -> None:
    minter = IdMinter(1, _fixed(NOW_MS))
    first, second, third = (minter.mint("DCM") for _ in range(3))
    assert [first.epoch_ms, second.epoch_ms, third.epoch_ms] == [NOW_MS, NOW_MS + 1, NOW_MS + 2]
    assert len({first.id, second.id, third.id}) == 3


def test_clock_going_backwards_still_increases() -> None:
    readings: Iterator[int] = iter([NOW_MS, NOW_MS - 5_000, NOW_MS + 10])
    minter = IdMinter(1, lambda: next(readings))
    epochs = [minter.mint("DCM").epoch_ms for _ in range(3)]
    assert epochs == [NOW_MS, NOW_MS + 1, NOW_MS + 10]


def test_10k_mints_across_8_threads_are_distinct_and_per_thread_increasing() -> None:
    minter = IdMinter(3, _fixed(NOW_MS))
    per_thread: list[list[MintedId]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def work(out: list[MintedId]) -> None:
        start.wait()
        for _ in range(1250):
            out.append(minter.mint("DCM"))

    threads = [threading.Thread(target=work, args=(out,)) for out in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [m.id for out in per_thread for m in out]
    assert len(ids) == 10_000
    assert len(set(ids)) == 10_000
    for out in per_thread:
        epochs = [m.epoch_ms for m in out]
        assert epochs == sorted(epochs)
    assert all(is_file_id(i) for i in ids)


@pytest.mark.parametrize("category", list(Category))
@pytest.mark.parametrize("node", [0, 1, 104, 9999])
def test_node_of_reads_the_number_every_category_mints_under(category: Category, node: int) -> None:
    minted = IdMinter(node, _fixed(NOW_MS)).mint(category.id_prefix)
    assert node_of(minted.id) == node


@pytest.mark.parametrize(
    "value",
    [
        "",
        "DCM-0001",
        "DCM-001-1676639713907",
        "dcm-0001-1676639713907",
        "DCM-0001-1676639713907\n",
        " DCM-0001-1676639713907",
        "DCM-0001-1676639713907.staged",
        "DCM-\u0661\u0662\u0663\u0664-1676639713907",  # Arabic-Indic digits
        "upload-inflight",
        "berkas/sandbox/TEMP/BRN-0001-00000000000001/LOGO/1700000000000-0001.png",
    ],
)
def test_node_of_is_none_for_anything_but_a_file_id(value: str) -> None:
    assert node_of(value) is None
