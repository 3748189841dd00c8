"""Intra-op parallelism of the CPU backend: a small persistent thread pool.

Why our own threads. NumPy runs every elementwise pass on one thread, and OpenBLAS, left
to thread the many small GEMMs of a convolution (one per block of images, 16 per Winograd
block) by itself, spends more on waking and syncing its threads than it gains: measured,
a ResNet-9 training step got *slower* with two BLAS threads than with one. So the big
kernels (convolutions, batch norm, pooling, large elementwise ops) split their own work
into independent parts -- blocks of images, row ranges -- and hand the parts to this pool,
each thread running whole parts (transforms, copies and its GEMMs) with BLAS on one
thread. NumPy releases the GIL inside ufunc loops, copies, reductions and matmul, so the
threads really run at once; only the Python between NumPy calls is serial, which is why
only parts worth at least `GRAIN` floats are split.

How a region runs (`run`):
- the calling thread works too, and parts are handed out one at a time from a shared
  counter (dynamic scheduling): on a busy machine, a worker that the OS does not schedule
  costs at most the part it holds, never half the work;
- OpenBLAS is held at one thread from the engine's first kernel region on, on any
  thread count (ctypes, through the library NumPy loaded; no threadpoolctl). Not only
  per region: after each threaded call OpenBLAS' threads spin for a while (its
  THREAD_TIMEOUT) before they sleep, and a spinning BLAS thread takes the core a pool
  worker needs (measured in a ResNet-9 step: the 4x4 layers' backward 1.8x slower in
  parallel than serial while BLAS ran two threads between the regions). So every GEMM
  outside the kernels' own regions runs on one thread too. On one engine thread as well:
  OpenBLAS' own threads cut a GEMM into tiles by their count, and edge tiles round
  differently (measured: LeNet-5's conv1 output 4.8e-7 apart on one engine thread with
  OpenBLAS on two and on two with it on one; on ~1% of random batches that flipped a
  max-pool near-tie, and the runs' weights parted by 1e-4 within four steps);
- one region at a time: a region started inside another (nested) or from a second Python
  thread while the pool is busy runs serially in its caller, with the same results;
- while other processes hold the cores the workers need, regions run serially for a
  while (`_Backoff`), then the pool is tried again.

Short passes stay serial (PASS_GRAIN). Every NumPy call takes the GIL back when it
returns; while the other thread holds it, that costs a wake-up of the waiting thread
(measured on the 2-core KVM machine: ~15-30 us a hand-off, a threading.Event round trip
58 us). So two threads each running a chain of short NumPy passes mostly wait for each
other: two free-running threads (no pool) gave 0.9x on 4 us additions, 1.26x on
LeNet-5's 2x2 pooling (about ten 10-20 us passes per half batch), 1.4x on 30-130 us
additions, 2x on 1.3 ms ones; a region also costs a wake-up to start and one to finish.
Kernels whose parts are such chains (elementwise ops, pooling) are therefore split only
in parts of at least PASS_GRAIN floats (2 MB, ~70 us an addition), which leaves LeNet-5's
(0.3 M floats a layer) serial: on the pool its pooling took 1.0 ms a step, not 0.73,
and its elementwise ops 0.60 ms, not 0.27. Parts with GEMMs in them (no GIL for a
GEMM's whole length) keep the smaller GRAIN.

Determinism. A kernel that sums over parts (a weight gradient, a column sum) keeps one
partial sum per *part*, never per thread, and adds them in part order; parts are cut from
the problem's size alone (`split`), never from the thread count. So results are the same
on any number of threads, and in the serial fallback (BLAS on one thread throughout).

Threads: `set_num_threads(n)` (like `torch.set_num_threads`), else the environment
variable DEMYSTIFY_NUM_THREADS, else the cores this process may run on. Where threads
cannot start (Pyodide in the browser) or BLAS' threads cannot be controlled, the default
is one thread: the serial path, with no pool at all.
"""

from __future__ import annotations

import ctypes
import glob
import itertools
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

GRAIN = 1 << 16  # floats of work per part, at least: below this Python overhead dominates
# (1 << 18, measured A/B: ResNet-9 step 275 -> 300 ms, LeNet-5 10.9 -> 10.2 ms; kept 1 << 16)
PASS_GRAIN = 1 << 19  # floats per part, at least, where a part is a chain of NumPy passes
# with no GEMM in it (elementwise ops, 2x2 pooling): see "Short passes stay serial"
ELEMENTWISE = 2 * PASS_GRAIN  # floats an elementwise op needs before it is split
MAX_PARTS = 16  # parts per region, at most (dynamic scheduling needs a few per thread)
ADAPTIVE = True  # back off to serial while the workers get no core (`_Backoff`)
ENV = "DEMYSTIFY_NUM_THREADS"


# -- OpenBLAS' thread count, through the library NumPy loaded --------------------------

class _Blas:
    """get/set of OpenBLAS' thread count, or None where NumPy's BLAS is another library
    (or none can be found): then it is left alone."""

    def __init__(self) -> None:
        self.get: Callable[[], int] | None = None
        self.set: Callable[[int], None] | None = None
        for path in self._candidates():
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix, suffix in itertools.product(("scipy_openblas", "openblas"),
                                                    ("64_", "")):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
                    self.get, self.set = get, set_
                    return

    @staticmethod
    def _candidates() -> list[str]:
        """OpenBLAS builds NumPy may have loaded: its wheel's bundled copy, then any
        mapped into this process (a system NumPy linked against the distribution's)."""
        root = os.path.dirname(os.path.dirname(np.__file__))
        found = sorted(glob.glob(os.path.join(root, "numpy.libs", "*openblas*")))
        found += sorted(glob.glob(os.path.join(os.path.dirname(np.__file__), ".dylibs",
                                               "*openblas*")))
        try:
            with open("/proc/self/maps") as f:
                found += sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower()
                                 and ln.split()[-1].startswith("/")})
        except OSError:
            pass
        return found

    def threads(self) -> int | None:
        return int(self.get()) if self.get is not None else None


_blas: _Blas | None = None


def blas() -> _Blas:
    global _blas
    if _blas is None:
        _blas = _Blas()
    return _blas


def blas_threads() -> int | None:
    """OpenBLAS' current thread count (None: not OpenBLAS, or not found)."""
    return blas().threads()


_blas_held = False


def hold_blas() -> None:
    """OpenBLAS on one thread from now on (see "How a region runs"); once per process."""
    global _blas_held
    _blas_held = True
    if threads_available() and (blas_threads() or 1) > 1:  # Pyodide: no OpenBLAS to hold
        blas().set(1)


# -- the thread count ------------------------------------------------------------------

def threads_available() -> bool:
    """Whether this Python can run threads at all (Pyodide's cannot)."""
    return sys.platform != "emscripten" and "pyodide" not in sys.modules


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """DEMYSTIFY_NUM_THREADS if set, else the usable cores; 1 where threads cannot run
    or where BLAS is not OpenBLAS (its own threads could not be held to one per part)."""
    if not threads_available():
        return 1
    env = os.environ.get(ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"{ENV}={env!r}: expected a whole number of threads, "
                             f"e.g. {ENV}=2") from None
    return _cores() if blas().set is not None else 1


_threads: int | None = None
_pool: _Pool | None = None


def get_num_threads() -> int:
    """Threads the CPU kernels split their work over (1: the serial path)."""
    global _threads
    if _threads is None:
        _threads = default_threads()
    return _threads


def set_num_threads(n: int | None) -> None:
    """Use n threads in the CPU kernels (None: back to the default). More than one where
    threads cannot run (Pyodide) is refused with a clear error."""
    global _threads, _pool
    if n is not None:
        n = int(n)
        if n < 1:
            raise ValueError(f"set_num_threads({n}): the thread count must be at least 1")
        if n > 1 and not threads_available():
            raise ValueError(f"set_num_threads({n}): this Python cannot run threads "
                             "(Pyodide); the CPU kernels run on one")
    _threads = n if n is not None else default_threads()
    if _pool is not None and _pool.size != _threads:
        _pool.close()
        _pool = None


# -- splitting work ---------------------------------------------------------------------

def split(count: int, cost: float, grain: float | None = None, most: int | None = None
          ) -> list[range]:
    """`count` items (images, rows, blocks) of `cost` floats of work each, cut into
    contiguous ranges of at least `grain` floats, at most `most` of them, as even as
    possible. Depends only on the sizes, never on the thread count (see Determinism)."""
    if count <= 0:
        return []
    grain = GRAIN if grain is None else grain
    most = MAX_PARTS if most is None else most
    parts = int(max(1, min(most, count, (count * cost) // max(grain, 1))))
    edges = [count * i // parts for i in range(parts + 1)]
    return [range(a, b) for a, b in zip(edges, edges[1:])]


class PerThread:
    """Scratch made on first use by each thread of a region (`slot` from `run`)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make, self.items = make, {}

    def __getitem__(self, slot: int) -> Any:
        item = self.items.get(slot)
        if item is None:
            item = self.items[slot] = self.make()
        return item


# -- the pool -------------------------------------------------------------------------

class _Job:
    def __init__(self, count: int, body: Callable[[int, int], None]) -> None:
        self.count, self.body = count, body
        self.next = itertools.count().__next__  # atomic under the GIL
        self.left = count
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def work(self, slot: int) -> None:
        while True:
            i = self.next()
            if i >= self.count:
                return
            try:
                if self.error is None:  # after a failure the remaining parts are skipped
                    self.body(i, slot)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                self.error = self.error or e
            finally:
                with self.lock:
                    self.left -= 1
                    if self.left == 0:
                        self.done.set()


class _Backoff:
    """Serial for a while when the workers are not getting a core.

    Why: a part a worker has taken cannot be taken back, so when another process holds
    the core the worker waits for, the caller waits out the OS's time slice at the end of
    each region (measured: two threads 0.77-0.92x of one with one other busy process on
    the 2 cores). So the time the caller spends waiting after its own share is summed
    over WINDOW regions; above SHARE of the regions' time, the next SERIAL regions run in
    the caller alone, then the pool is tried again. The results are the same either way
    (see Determinism); only the speed changes."""

    WINDOW, SHARE, SERIAL = 32, 0.3, 256

    def __init__(self) -> None:
        self.worked = self.waited = 0.0
        self.regions = self.serial_left = 0

    def record(self, worked: float, waited: float) -> None:
        self.worked += worked
        self.waited += waited
        self.regions += 1
        if self.regions >= self.WINDOW:
            if ADAPTIVE and self.waited > self.SHARE * (self.worked + self.waited):
                self.serial_left = self.SERIAL
            self.worked = self.waited = 0.0
            self.regions = 0

    def serial(self) -> bool:
        """Whether this region should run serially (and count it)."""
        if self.serial_left > 0:
            self.serial_left -= 1
            return True
        return False


class _Pool:
    """size - 1 daemon workers; the caller of `run` is the size-th thread (slot 0)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.backoff = _Backoff()
        self.busy = threading.Lock()
        self.wake = threading.Condition()
        self.job: _Job | None = None
        self.generation = 0
        self.closed = False
        self.workers = [threading.Thread(target=self._loop, args=(slot,), daemon=True,
                                         name=f"engine-cpu-{slot}")
                        for slot in range(1, size)]
        try:
            for t in self.workers:
                t.start()
        except RuntimeError:  # "can't start new thread": a sandbox, a thread limit
            self.close()
            raise

    def _loop(self, slot: int) -> None:
        seen = 0
        while True:
            with self.wake:
                while self.generation == seen and not self.closed:
                    self.wake.wait()
                if self.closed:
                    return
                seen, job = self.generation, self.job
            if job is not None:
                job.work(slot)

    def run(self, count: int, body: Callable[[int, int], None]) -> bool:
        """Run the job on the pool; False (nothing run) if the pool is busy."""
        if self.backoff.serial() or not self.busy.acquire(blocking=False):
            return False
        try:
            job = _Job(count, body)
            with self.wake:
                self.job = job
                self.generation += 1
                self.wake.notify_all()
            t0 = time.perf_counter()
            job.work(0)
            t1 = time.perf_counter()
            job.done.wait()
            self.backoff.record(t1 - t0, time.perf_counter() - t1)
            self.job = None
            if job.error is not None:
                raise job.error
            return True
        finally:
            self.busy.release()

    def close(self) -> None:
        with self.wake:
            self.closed = True
            self.wake.notify_all()


def _forget_pool() -> None:
    """In a forked child the workers do not exist: start a fresh pool when needed (the
    OpenBLAS count the parent held stays held)."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def run(count: int, body: Callable[[int, int], None]) -> None:
    """Call body(part, slot) for every part in range(count), spread over the threads;
    `slot` (0 .. threads - 1) names the calling thread, for its scratch (`PerThread`).
    Parts must write disjoint outputs. Serial (slot 0, in order) with one thread, one
    part, or when the pool is busy (nested or concurrent regions)."""
    global _pool, _threads
    if not _blas_held:
        hold_blas()
    n = get_num_threads()
    if n > 1 and count > 1:
        if _pool is None:
            try:
                _pool = _Pool(n)
            except RuntimeError:  # threads cannot start here after all: serial from now on
                _threads = 1
        if _pool is not None and _pool.run(count, body):
            _counts["pool"] += 1
            return
    _counts["serial" if count > 1 else "single"] += 1
    for i in range(count):
        body(i, 0)


_counts = {"pool": 0, "serial": 0, "single": 0}


def stats() -> dict[str, int | None]:
    """What the kernels really ran on: threads, live pool threads (the caller included),
    OpenBLAS' thread count now, and regions run on the pool / serially though split in
    parts (one thread, or the pool busy) / in one part."""
    return {"threads": get_num_threads(), "pool_threads": 0 if _pool is None else
            1 + sum(t.is_alive() for t in _pool.workers), "blas_threads": blas_threads(),
            **_counts}


def map_ranges(parts: Sequence[range], body: Callable[[range], Any]) -> list[Any]:
    """body(part) for each range (from `split`), spread over the threads; the results in
    part order."""
    out: list[Any] = [None] * len(parts)

    def one(i: int, slot: int) -> None:
        out[i] = body(parts[i])
    run(len(parts), one)
    return out


def map_slices(count: int, cost: float, body: Callable[[slice], Any],
               grain: float | None = None) -> list[Any]:
    """`map_ranges` over `split(count, cost)`, each part given as a slice of the leading
    axis (of `count` images or rows)."""
    return map_ranges(split(count, cost, grain), lambda r: body(slice(r.start, r.stop)))


def ufunc(f: np.ufunc, *args: Any, dtype: Any = None) -> np.ndarray:
    """f(*args, dtype=dtype) for a NumPy ufunc, in parts along the leading axis when the
    result is large (ELEMENTWISE floats) and there are threads; else in one call. Each
    part's values are what one call gives (elementwise: no rounding order involved), in
    the same memory order (channels-last stays channels-last)."""
    if (_threads or get_num_threads()) == 1 or not any(
            isinstance(a, np.ndarray) and a.size >= ELEMENTWISE for a in args):
        return np.asarray(f(*args) if dtype is None else f(*args, dtype=dtype))  # the usual
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    size = math.prod(shape)
    full = next((a for a in arrays if a.shape == shape), None)
    if size < ELEMENTWISE or full is None or not shape or shape[0] < 2:
        return np.asarray(f(*args, dtype=dtype))
    # an operand with the result's leading axis is cut with it; others broadcast whole
    cut = [isinstance(a, np.ndarray) and a.ndim == len(shape) and a.shape[0] == shape[0]
           for a in args]
    # mixed memory orders: NumPy picks the result's; leave it to NumPy. Compared in
    # elements, not bytes: a ReLU's bool mask and its float32 gradient share one order
    # (compared in bytes, its backward ran serially: 9.4 ms of a 2-thread ResNet-9 step)
    if len({tuple(s // a.itemsize for s in a.strides) for a, c in zip(args, cut) if c}) > 1:
        return np.asarray(f(*args, dtype=dtype))
    kind = f(*(a[:0] if c else a for a, c in zip(args, cut)), dtype=dtype).dtype
    out = np.empty_like(full, dtype=kind)

    def part(r: slice) -> None:
        f(*(a[r] if c else a for a, c in zip(args, cut)), out=out[r], dtype=dtype)
    map_slices(shape[0], size // shape[0], part, grain=PASS_GRAIN)
    return out


def total(partials: Sequence[np.ndarray]) -> np.ndarray:
    """The sum of per-part partial sums, added in part order (thread-count independent)."""
    out = partials[0].copy()
    for p in partials[1:]:
        out += p
    return out
