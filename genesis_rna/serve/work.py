"""The server's limits and its bounded work queue (model and ViennaRNA work off the event loop; 503 when full).
No FastAPI here, so the command line can read the defaults."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import InputError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


# ------------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class Limits:
    """What one request may ask for. Long sequences cost O(L^2) memory (attention, pair probabilities) and
    O(L^3) time (ViennaRNA), so each endpoint has its own ceiling."""

    max_length: int = 1000          # nucleotides per sequence for /embed, /fold, /score-mutations, /design
    max_attention_length: int = 400  # /attention returns L x L per head: keep the JSON small
    max_records: int = 64           # records per /embed request
    max_variants: int = 2000        # variants per /score-mutations request
    max_designs: int = 10           # sequences per /design request
    design_time_limit_s: float = 10.0  # search time per designed sequence (unsolved designs say so)
    max_body_bytes: int = 1_000_000
    max_per_token_nt: int = 4000      # nucleotides per /embed request when per-nucleotide vectors are asked for


class Overloaded(Exception):
    """The work queue is full (answered 503)."""


class WorkQueue:
    """A fixed thread pool plus a counter: at most ``workers + queue`` requests in flight, the rest get 503.

    Torch and ViennaRNA release the GIL in their kernels, so the event loop keeps answering /health while a
    forward pass runs.
    """

    def __init__(self, workers: int = 1, queue: int = 32) -> None:
        if workers < 1 or queue < 0:
            raise InputError(f"workers must be >= 1 and queue >= 0, got {workers} and {queue}")
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="genesis-rna-serve")
        self.capacity = workers + queue
        self.in_flight = 0
        self._lock = threading.Lock()

    async def run(self, fn: Callable, *args, **kwargs):
        with self._lock:
            if self.in_flight >= self.capacity:
                raise Overloaded
            self.in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))
        finally:
            with self._lock:
                self.in_flight -= 1

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
