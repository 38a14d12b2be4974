"""Worker-side pieces of `attnpaths sweep` that need `dask.distributed` (the `sweep` extra) to import: pinning
workers to cores, and starting and stopping a LocalCluster's worker processes quietly."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading

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


@contextlib.contextmanager
def sigint_ignored():
    """SIGINT ignored in this process meanwhile (main thread only), so that processes started meanwhile ignore it:
    a Ctrl-C sent to the terminal's process group then stops the driver, which closes its workers itself, instead
    of every worker printing its own traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def quiet_dask_logging():
    """Dask's loggers silenced meanwhile (their levels restored after): an interrupted sweep's shutdown warnings
    (cancelled tasks, workers killed) are expected, and the command ends with its own one line instead."""
    names = ["distributed"] + [n for n in logging.root.manager.loggerDict if n.startswith("distributed.")]
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


def close_client(client, interrupted: bool) -> None:
    """Close a client this module started and its LocalCluster; on an interruption, quietly: the worker
    processes (started by this process) are killed first, as their tasks' results are lost anyway."""
    cluster = getattr(client, "cluster", None)
    if not interrupted:
        client.close()
        if cluster is not None:
            cluster.close()
        return
    with quiet_dask_logging():
        for nanny in getattr(cluster, "workers", {}).values():
            process = getattr(getattr(nanny, "process", None), "process", None)
            pid = getattr(process, "pid", None)
            if pid:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            client.close(timeout=5)
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=5)
