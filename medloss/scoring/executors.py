"""Where cases are scored: in this process, a local process pool, or a Dask cluster.

Every executor runs ``fn(case, pred_path, ref_path, config)`` for each job and yields ``(index, result)`` as jobs
finish, in any order; ``result`` is what ``fn`` returned, or the exception that ended the job outside ``fn`` (a
crashed worker). Paths travel, not arrays: the workers read the files, so on a cluster they must see the same
paths (a shared file system). :func:`resolve_executor` turns the ``executor=`` argument of
:func:`~medloss.scoring.score_pairs` into one.

* :class:`LocalExecutor` (``workers=1``: this process; more: a ``ProcessPoolExecutor`` whose workers die with this
  process, :mod:`medloss.scoring.workers`). An interrupt (SIGINT/SIGTERM, or any exception in the caller) ends the
  workers at once.
* :class:`DaskExecutor`: a ``distributed.Client`` passed in, a scheduler address (``tcp://host:8786``), or neither:
  then a ``LocalCluster`` of ``workers`` single-threaded worker processes whose every listener (scheduler, workers,
  nannies, dashboard) is bound to 127.0.0.1, closed when the run ends. Dask reruns the tasks of a worker that dies
  (up to ``distributed.scheduler.allowed-failures`` times); the pending futures are cancelled on an interrupt.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from medloss.errors import InvalidOptionError, OptionTypeError

Job = tuple[str, str, str]


class LocalExecutor:
    """``workers`` processes on this machine (1 = score in this process).

    Args:
        workers: number of processes (1: this process).
    """

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InvalidOptionError(f"`workers` must be an integer >= 1, got {workers!r}.")
        self.workers = workers

    @property
    def parallel(self) -> bool:
        return self.workers > 1

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def map_unordered(self, fn: Callable, jobs: Sequence[Job], config: Any) -> Iterator[tuple[int, Any]]:
        if self.workers <= 1 or len(jobs) < 2:
            for i, job in enumerate(jobs):
                yield i, fn(*job, config)
            return
        yield from self._pool(fn, jobs, config)

    def _pool(self, fn: Callable, jobs: Sequence[Job], config: Any) -> Iterator[tuple[int, Any]]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        from medloss.scoring.workers import end_pool, init_worker

        # fork (Linux) reuses the imported modules; every job is submitted, so every worker is forked, before the
        # caller's progress display can start a thread. Elsewhere, spawn.
        method = "fork" if sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods() else "spawn"
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(jobs)),
                                   mp_context=multiprocessing.get_context(method), initializer=init_worker,
                                   initargs=(os.getpid(),))
        try:
            futures = {pool.submit(fn, *job, config): i for i, job in enumerate(jobs)}
            for fut in as_completed(futures):
                try:
                    yield futures[fut], fut.result()
                except Exception as exc:  # a crashed worker: this job fails, the others go on
                    yield futures[fut], exc
        except BaseException:  # SIGINT/SIGTERM or a failure in the caller: no job may go on running
            end_pool(pool)
            raise
        pool.shutdown()


class DaskExecutor:
    """Cases as Dask tasks (module docstring). ``client``: a ``distributed.Client``; ``scheduler``: an address to
    connect to; neither: a loopback ``LocalCluster`` of ``workers`` processes (default: the CPU count).

    Args:
        client: a running ``distributed.Client``.
        scheduler: the address of a running scheduler, e.g. ``tcp://10.1.2.3:8786``.
        workers: processes of the local cluster started when neither is given (default: the CPU count).
    """

    name = "dask"
    parallel = True

    def __init__(self, client: Any = None, *, scheduler: str | None = None, workers: int | None = None) -> None:
        if client is not None and scheduler is not None:
            raise InvalidOptionError("give a Dask `client` or a `scheduler` address, not both.")
        self.client, self.scheduler, self.workers = client, scheduler, workers
        self._own: list[Any] = []

    def __enter__(self) -> DaskExecutor:
        try:
            from distributed import Client, LocalCluster
        except ImportError as err:
            raise InvalidOptionError("the Dask executor needs dask.distributed: pip install 'medloss[dask]'.") from err
        if self.client is None:
            if self.scheduler is not None:
                self.client = Client(self.scheduler)
                self._own = [self.client]
            else:
                cluster = _local_cluster(LocalCluster, self.workers or os.cpu_count() or 1)
                self.client = Client(cluster)
                self._own = [self.client, cluster]
        return self

    def __exit__(self, *exc: object) -> None:
        for thing in self._own:
            thing.close()
        if self._own:
            self.client = None
        self._own = []

    def map_unordered(self, fn: Callable, jobs: Sequence[Job], config: Any) -> Iterator[tuple[int, Any]]:
        import uuid

        from distributed import as_completed

        token = uuid.uuid4().hex[:12]
        futures = [self.client.submit(fn, *job, config, key=f"medloss-score-{token}-{i}")
                   for i, job in enumerate(jobs)]
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for fut in as_completed(futures):
                try:
                    yield index[fut.key], fut.result()
                except Exception as exc:  # e.g. KilledWorker: the task's workers died too often
                    yield index[fut.key], exc
                fut.release()
        except BaseException:
            self.client.cancel(futures)
            raise


def _local_cluster(local_cluster: Any, workers: int) -> Any:
    """A loopback ``LocalCluster`` of single-threaded workers started without ``MALLOC_TRIM_THRESHOLD_``.

    Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which fixes glibc's mmap threshold at 128 kB: every
    array of a case is then mapped, faulted in page by page and unmapped (11x the page faults, +0.25 s of system
    time per BraTS case here); glibc's adaptive default reuses the memory instead. Dask's nanny also writes its
    worker variables into this process's environment (inherited by the next cluster); it is restored here.
    """
    import dask

    saved = dict(os.environ)
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            return local_cluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                 dashboard_address="127.0.0.1:0")
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)


def _is_client(obj: Any) -> bool:
    mod = type(obj).__module__ or ""
    return mod.startswith("distributed") and hasattr(obj, "submit") and hasattr(obj, "scheduler_info")


def resolve_executor(executor: Any = None, *, scheduler: str | None = None,
                     workers: int | None = None) -> LocalExecutor | DaskExecutor:
    """``None`` / ``"local"``: :class:`LocalExecutor` of ``workers`` (default 1); an int: that many local workers;
    ``"dask"``: :class:`DaskExecutor` (``scheduler`` address, or a local cluster of ``workers``); a
    ``distributed.Client``: Dask on it; an executor: itself."""
    if isinstance(executor, (LocalExecutor, DaskExecutor)):
        return executor
    if executor is None or executor == "local":
        if scheduler is not None:
            raise InvalidOptionError("`scheduler` is a Dask address: use it with executor 'dask'.")
        return LocalExecutor(workers or 1)
    if isinstance(executor, int) and not isinstance(executor, bool):
        return LocalExecutor(executor)
    if executor == "dask":
        return DaskExecutor(scheduler=scheduler, workers=workers)
    if _is_client(executor):
        return DaskExecutor(executor)
    raise OptionTypeError(f"`executor` must be 'local', 'dask', a number of local workers, a distributed.Client "
                          f"or an executor of medloss.scoring.executors, got {executor!r}.")
