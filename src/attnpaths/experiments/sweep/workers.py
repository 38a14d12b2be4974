"""Worker-side pieces of `attnpaths sweep` that need `dask.distributed` (the `sweep` extra) to import: pinning
workers to cores, and starting and stopping a LocalCluster's worker processes quietly."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys

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
def stderr_to(path):
    """This process's standard error (file descriptor 2) appended to `path` meanwhile, so that the worker
    processes a LocalCluster starts meanwhile write their logs there for good: a terminal's Ctrl-C reaches every
    process of its group, and each worker would print its own traceback; the driver ends with one line and
    closes the workers itself. None: unchanged."""
    if path is None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def dask_logging_to(path):
    """Dask's log records of this process (scheduler, nanny, client) appended to `path` meanwhile instead of the
    terminal: when a terminal's Ctrl-C stops the workers, the scheduler's warnings about them would otherwise
    come before the command's one closing line. None: unchanged."""
    if path is None:
        yield
        return
    logger = logging.getLogger("distributed")
    handlers, propagate = list(logger.handlers), logger.propagate
    handler = logging.FileHandler(path, delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    for h in handlers:
        logger.removeHandler(h)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        for h in handlers:
            logger.addHandler(h)
        logger.propagate = propagate


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


def close_client(client, interrupted: bool, cluster=None) -> None:
    """Close a client this module started (None: none yet) and its LocalCluster; on an interruption, quietly: the
    worker processes (started by this process) are killed first, as their tasks' results are lost anyway."""
    cluster = getattr(client, "cluster", None) if cluster is None else cluster
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
        if client is not None:
            with contextlib.suppress(Exception):
                client.close(timeout=5)
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=5)
