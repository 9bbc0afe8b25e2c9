"""``python -m bench.peer --port N --data-dir DIR``: the careful peer under uvicorn."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from bench.peer.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # One process, like `berkas serve` in the comparison; access logging off on both sides.
    uvicorn.run(
        create_app(data_dir),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
