"""The worker-pool engine: run a function over a lazy iterable on N threads, stream results back.

The tutorial's shape, made safe: a worker takes an item from a queue, does the work, reports back,
and N named daemon threads share the queue. CPython's ``concurrent.futures.thread`` is the model
(a stop sentinel each worker passes on; a task's ``BaseException`` is stored, never kills a worker).

What it adds:

* **Lazy, bounded input.** A feeder thread pulls from your iterable only while fewer than
  ``threads + queue_size`` items are in flight (queued, running, or finished and not yet handed
  to you), so an iterator of 10**7 addresses is never materialised.
* **Streaming results.** :meth:`Pool.imap_unordered` yields each :class:`TaskResult` as it
  completes; :meth:`Pool.imap` yields them in input order through a reorder buffer that is bounded
  by the same window.
* **Cancellation that keeps results.** After :meth:`Pool.cancel` (any thread) the feeder stops,
  queued items are dropped without running, running tasks get ``grace`` seconds to finish, and the
  iterator *keeps yielding every result already finished*, then stops. So a caller gets everything
  by simply continuing the ``for`` loop.
* **Ctrl-C.** While a run is being iterated from the main thread, the first SIGINT does not raise
  in your loop: it cancels the run, the iterator yields every finished result, then raises
  ``KeyboardInterrupt``. A plain ``for`` loop that writes each result therefore writes all of
  them before the interrupt reaches the caller. A second SIGINT raises at once. (Installed only
  when the SIGINT handler is Python's default; a custom handler of yours is left alone.)

A task that outlives ``grace`` after a cancel cannot be killed (Python threads cannot be); the
iterator stops waiting for it and its daemon worker exits as soon as the task returns. Give
blocking tasks their own timeouts (sockets: ``settimeout``) shorter than ``grace``.
"""

from __future__ import annotations

from hilos.pool.core import Pool, run_all
from hilos.pool.task import MAX_THREADS, PoolStats, TaskResult

__all__ = ["MAX_THREADS", "Pool", "PoolStats", "TaskResult", "run_all"]
