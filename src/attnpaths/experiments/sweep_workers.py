"""Worker-side pieces of `attnpaths sweep` that need `dask.distributed` (the `sweep` extra) to import."""

from __future__ import annotations

import os

from distributed import WorkerPlugin


def pin_process_to_core(core: int) -> None:
    """Restrict every thread of this process to CPU `core` (Linux); threads started later inherit it."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), {core})
        except (OSError, ValueError):  # a thread that ended meanwhile
            pass


class PinToCore(WorkerPlugin):
    """Dask worker plugin: LocalCluster worker number i runs on core cores[i % len(cores)] only."""

    def __init__(self, cores: tuple[int, ...]):
        self.cores = tuple(cores)

    def setup(self, worker) -> None:
        try:
            number = int(worker.name)
        except (TypeError, ValueError):  # a worker not named by LocalCluster: leave it unpinned
            return
        pin_process_to_core(self.cores[number % len(self.cores)])
