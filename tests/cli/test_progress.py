"""The partner CLI's progress bar, drawn into a fake terminal."""

from __future__ import annotations

import io

from berkas.cli.progress import Progress, human, note


class Terminal(io.StringIO):
    def __init__(self, tty: bool = True) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_bar_redraws_in_place_at_most_ten_times_a_second() -> None:
    screen, clock = Terminal(), Clock()
    bar = Progress("upload ktp.pdf", stream=screen, clock=clock)
    total = 4 * 1024 * 1024
    for step in range(1, 65):  # 64 KiB chunks, 1 ms apart
        clock.now += 0.001
        bar(step * 64 * 1024, total)
    bar.close()

    drawn = screen.getvalue()
    # The first chunk, then only the last one (< 0.1 s in between).
    assert drawn.count("\r") == 2
    last = drawn.split("\r")[-1]
    assert last.endswith("\n")
    # Padded with spaces over the longer line it replaces.
    assert last.rstrip() == "upload ktp.pdf [##############################] 100% 4.0 MB / 4.0 MB"
    assert len(last) == len(drawn.split("\r")[1]) + 1


def test_an_unknown_total_shows_the_bytes_so_far() -> None:
    screen, clock = Terminal(), Clock()
    bar = Progress("upload stdin", stream=screen, clock=clock)
    bar(1500, None)
    clock.now = 1.0
    bar(3 * 1024 * 1024, None)
    bar.close()
    assert screen.getvalue().split("\r")[1:] == ["upload stdin 1.5 KB", "upload stdin 3.0 MB\n"]


def test_nothing_is_drawn_when_not_a_terminal_or_quiet() -> None:
    piped = Terminal(tty=False)
    bar = Progress("x", stream=piped)
    bar(1, 2)
    bar.close()
    assert piped.getvalue() == ""

    quiet = Terminal()
    bar = Progress("x", stream=quiet, enabled=False)
    bar(1, 2)
    bar.close()
    assert quiet.getvalue() == ""


def test_human_sizes() -> None:
    assert [human(n) for n in (0, 1023, 1024, 15 * 1024 * 1024 + 1)] == [
        "0 B",
        "1023 B",
        "1.0 KB",
        "15.0 MB",
    ]


def test_a_note_is_for_a_terminal_only() -> None:
    screen, pipe, quiet = Terminal(), Terminal(tty=False), Terminal()
    note("metadata removed before storing: EXIF", stream=screen)
    note("metadata removed before storing: EXIF", stream=pipe)
    note("metadata removed before storing: EXIF", stream=quiet, enabled=False)
    assert screen.getvalue() == "metadata removed before storing: EXIF\n"
    assert pipe.getvalue() == quiet.getvalue() == ""
