"""The peer's app for ``uvicorn --factory --workers N`` (BENCH_WORKERS > 1): each worker
builds it from ``BENCH_PEER_DATA_DIR``. ``python -m bench.peer`` serves one process."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from bench.peer.app import create_app


def app() -> FastAPI:
    return create_app(Path(os.environ["BENCH_PEER_DATA_DIR"]))
