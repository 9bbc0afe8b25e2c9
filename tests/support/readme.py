"""README.md's code blocks, read and run as a reader would paste them.

The convention (README.md's own source): an HTML comment on the line right before a
fence says what the block is for a test.

- ``<!-- readme-test -->``: run it. ``sh``/``bash`` blocks run in order in one bash
  session (``set -euo pipefail``), so variables and functions carry over as in a
  terminal; ``python`` blocks run in that session too, in their place, with the
  interpreter named by ``$README_PYTHON``.
- ``<!-- readme-test: skip (why) -->``: never run (it serves forever, asks at a
  terminal, needs a real DOKU, ...); the reason is reported as a skip.

Output (``text``, ``json``, plain) fences are not code and carry no marker.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

CODE = frozenset({"sh", "bash", "python"})
MARKER = re.compile(r"^<!--\s*readme-test(?::\s*skip\s*\((?P<reason>[^)]+)\))?\s*-->$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
PY_END = "README_TEST_PYTHON_END"


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block: where it is, what it is, and what its marker says."""

    line: int  # of the opening fence, 1-based
    section: str  # the ``## `` heading it is under
    lang: str
    text: str
    marked: bool
    skip: str | None  # the reason, for a skip marker

    @property
    def runs(self) -> bool:
        return self.marked and self.skip is None and self.lang in CODE

    def where(self) -> str:
        return f"README.md:{self.line} ({self.section})"


def blocks(markdown: str) -> list[Block]:
    """Every fenced block of ``markdown``, in order, with its marker (if any)."""
    found: list[Block] = []
    lines = markdown.splitlines()
    section, i = "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        opening = FENCE.match(line)
        if opening is None:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        marker = MARKER.match(lines[i - 1].strip()) if i > 0 else None
        found.append(
            Block(
                line=i + 1,
                section=section,
                lang=opening["lang"],
                text="\n".join(lines[i + 1 : end]),
                marked=marker is not None,
                skip=None if marker is None else marker["reason"],
            )
        )
        i = end + 1
    return found


@dataclass(frozen=True, slots=True)
class Session:
    """What one bash session running some blocks did: status, and each block's output."""

    returncode: int
    ran: list[Block]
    stdout: list[str]  # per block that started, in order
    stderr: list[str]
    prelude_error: str  # what the session printed outside any block

    @property
    def failed(self) -> Block | None:
        """The block that stopped the session (None if it finished or none started)."""
        if self.returncode == 0 or not self.stdout:
            return None
        return self.ran[len(self.stdout) - 1]

    def report(self) -> str:
        """Which block failed, what it was and what it printed: for an assertion message."""
        failed = self.failed
        if failed is None:
            return f"the session exited {self.returncode}:\n{self.prelude_error}"
        n = len(self.stdout) - 1
        return (
            f"{failed.where()} failed (exit {self.returncode}):\n"
            f"```{failed.lang}\n{failed.text}\n```\n"
            f"stdout:\n{self.stdout[n]}\nstderr:\n{self.stderr[n]}"
        )


def script(run: list[Block], *, prelude: str, out: Path, strict: bool = True) -> str:
    """The bash script running ``run`` in order, each block's output into ``out``."""
    parts = ["set -euo pipefail" if strict else "set +e", prelude]
    for n, block in enumerate(run):
        stdout, stderr = shlex.quote(str(out / f"{n}.out")), shlex.quote(str(out / f"{n}.err"))
        body = block.text
        if block.lang == "python":
            body = f"\"$README_PYTHON\" - <<'{PY_END}'\n{body}\n{PY_END}"
        # A group, not a subshell: what a block defines stays for the next, as in a
        # terminal, and under ``set -e`` a failing command ends the session here.
        parts.append(f"{{\n{body}\n}} >{stdout} 2>{stderr}")
    return "\n".join(parts) + "\n"


def run_blocks(
    run: list[Block],
    *,
    cwd: Path,
    env: dict[str, str],
    prelude: str = "",
    strict: bool = True,
    timeout: float = 180,
) -> Session:
    """Run ``run`` in one bash session in ``cwd``; ``strict`` is ``set -euo pipefail``
    (``False``: on as an interactive shell, where a failed command does not stop)."""
    out = cwd / ".readme-test"
    out.mkdir(exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    completed = subprocess.run(
        ["bash", "-c", script(run, prelude=prelude, out=out, strict=strict)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    started = sum(1 for n in range(len(run)) if (out / f"{n}.out").exists())
    return Session(
        returncode=completed.returncode,
        ran=run,
        stdout=[(out / f"{n}.out").read_text() for n in range(started)],
        stderr=[(out / f"{n}.err").read_text() for n in range(started)],
        prelude_error=completed.stdout + completed.stderr,
    )
