"""One Playground training run, off the page's thread, reporting through a queue.

On a server the run is a thread; in the browser (Pyodide has no threads) it is a task on
the worker's event loop that pauses after every epoch (and between the random forest's
trees), so the page gets its curves and Cancel in between. `engine.fit` trains one
epoch per call; its callbacks put steps, epochs and throttled snapshots of every hidden
unit (`engine.mlp.snapshot`) into the queue, which the page's poller drains and draws.
Cancel sets a flag the next step reads (`info.stop = True`).

The model, loss, penalties, features and optimizer come from the engine's factory
(`engine.mlp.build`): the run only wires them to the data, the device and the queue.
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from webapp.common import GPU_LOCK, IN_BROWSER, log
from webapp.playground_data import Dataset, load
from webapp.playground_state import LATEST, Finished

MAX_CONCURRENT_RUNS = 2
_run_slots = threading.BoundedSemaphore(MAX_CONCURRENT_RUNS)
MAX_DRAWN_UNITS = 16      # tiles per hidden layer in the network drawing
MAX_WEIGHT_IMAGES = 32    # first-layer weights shown as images (MNIST)
GRID = 64                 # the decision surface's resolution; unit tiles use every 2nd point
SNAPSHOT_S = 0.25         # at most this often a snapshot of every unit (the redraw throttle)
PROBE_ROWS = 300


class Throttle:
    """True at most once per `interval` seconds (the first call is always True), and
    never sooner than 4x what the last piece of work took (`spent`) after it, so drawing
    a wide network takes at most a fifth of a run's time."""

    def __init__(self, interval: float) -> None:
        self.interval, self.last, self.cost = interval, -math.inf, 0.0

    def ready(self) -> bool:
        now = time.perf_counter()
        if now - self.last >= max(self.interval, 4 * self.cost):
            self.last = now
            return True
        return False

    def spent(self, seconds: float) -> None:
        self.cost = seconds


@dataclass(frozen=True)
class Settings:
    """Everything a run needs: the data (name, noise, split, CSV table), the engine
    recipe, the device and whether to train a random forest beside the network."""

    data: str
    recipe: Any                     # engine.mlp.Recipe
    noise: float = 0.0
    train_fraction: float = 0.5
    device: str = "CPU"
    forest: bool = True
    table: Any = None               # engine.data.tabular.Table for data == "csv"
    name: str = ""                  # e.g. "traditional: tanh + constant init"


@dataclass
class Result:
    """What a finished run measured (the experiments' result cards are written from it)."""

    task: str
    metric: float                   # test accuracy, or test MSE for regression
    train_s: float                  # seconds in training steps (drawing excluded)
    device: str
    device_name: str
    epochs: int
    why: str                        # "finished", "cancelled", "training diverged: ..."
    dead: float                     # fraction of hidden units dead on the training rows
    saturated: float
    forest: dict[str, Any] | None = None
    stats: list[dict[str, Any]] = field(default_factory=list)

    @property
    def metric_text(self) -> str:
        from engine.export_script import measured_text

        return measured_text(self.task, self.metric)

    def short(self) -> str:
        m = (f"{100 * self.metric:.2f}% test accuracy" if self.task == "classification"
             else f"test MSE {self.metric:.4f}")
        return f"{m} in {self.train_s:.1f} s on {self.device_name}"


def forest_trees(rows: int, features: int) -> int:
    """50 trees for small tables, 10 for MNIST-sized ones (each tree is grown in NumPy)."""
    return 50 if rows * features <= 200_000 else 10


def device_name(device: str) -> str:
    import engine

    if device == "cpu":
        return "CPU (NumPy)"
    try:
        return "GPU (" + engine.backends.get("gpu").describe() + ")"
    except Exception:  # noqa: BLE001
        return "GPU"


class Run:
    """One training run in a background thread (or event-loop task), reporting through a
    queue of (kind, payload) events: status, begin, step, epoch, snapshot, forest, done
    (payload: a Result), error (a message), cancelled (before it started: a message)."""

    def __init__(self, number: int, settings: Settings) -> None:
        self.number, self.settings = number, settings
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.cancelled = threading.Event()
        self.model: Any = None
        self.built: Any = None
        self.dataset: Dataset | None = None
        self.result: Result | None = None
        self.finished: Finished | None = None
        self.thread = threading.Thread(target=self._main, daemon=True,
                                       name=f"playground-run-{number}")

    @property
    def recipe(self) -> Any:
        return self.settings.recipe

    def label(self) -> str:
        s = self.settings
        prefix = f"{s.name}: " if s.name else ""
        return f"#{self.number} {prefix}{s.recipe.describe()}, {s.device}"

    def start(self) -> None:
        """A thread on a server. In the browser (no threads) a task on the worker's event
        loop that yields after every epoch, so the page gets each epoch's curves and Cancel
        between epochs."""
        if IN_BROWSER:
            asyncio.get_event_loop().create_task(self._main_async())
        else:
            self.thread.start()

    async def _main_async(self) -> None:
        for _ in self._main_epochs():
            await asyncio.sleep(0)  # let the page's poller and widgets run

    def _main(self) -> None:
        for _ in self._main_epochs():
            pass

    def _main_epochs(self) -> Iterator[None]:
        """The run, pausing (yield) after every epoch."""
        from engine import random as engine_random

        if not _run_slots.acquire(timeout=0.1):
            self.events.put(("status", "waiting for a free training slot…"))
            while not _run_slots.acquire(timeout=0.5):
                if self.cancelled.is_set():
                    self.events.put(("cancelled", "cancelled before it started"))
                    return
        gpu = self.settings.device == "GPU"
        try:
            if gpu and not GPU_LOCK.acquire(blocking=False):
                self.events.put(("status", "waiting for the GPU (another run uses it)…"))
                while not GPU_LOCK.acquire(timeout=0.5):
                    if self.cancelled.is_set():
                        self.events.put(("cancelled", "cancelled before it started"))
                        return
            try:
                with engine_random.seeded(self.recipe.seed):  # this run's own stream
                    yield from self._train()
            finally:
                if gpu:
                    GPU_LOCK.release()
        except Exception as exc:  # noqa: BLE001  (reported on the page)
            self.events.put(("error", f"{type(exc).__name__}: {exc}"))
        finally:
            _run_slots.release()
            if self.cancelled.is_set():
                log.info("Playground run #%d stopped (cancelled); its training slot is "
                         "free", self.number)

    # -- the run -------------------------------------------------------------------------
    def _device(self) -> str:
        import engine

        device = "gpu" if self.settings.device == "GPU" else "cpu"
        try:
            return engine.backends.resolve(device)
        except engine.DeviceError as exc:
            self.events.put(("status", f"no GPU ({exc}); training on the CPU"))
            return "cpu"

    def _train(self) -> Iterator[None]:
        import engine
        from engine import explain, mlp

        s, recipe = self.settings, self.settings.recipe
        ds = self.dataset = load(s.data, s.noise, s.train_fraction, recipe.seed, s.table)
        if ds.task != recipe.task:
            raise ValueError(f"the data set is {ds.task} but the recipe says {recipe.task}")
        device = self._device()
        engine.manual_seed(recipe.seed)
        built = self.built = mlp.build(recipe, ds.x_train, ds.y_train, ds.scale,
                                       classes=ds.n_classes or None,
                                       standardize=ds.standardize)
        model = self.model = built.model.to(device)
        x, y = built.features(ds.x_train), mlp.targets(ds.y_train, ds.task)
        xt, yt = built.features(ds.x_test), mlp.targets(ds.y_test, ds.task)
        probe = x[:PROBE_ROWS]
        plane = None
        if ds.extent is not None:
            points, _ = explain.grid_2d(ds.extent[:2], ds.extent[2:], GRID)
            plane = built.features(points)
        batch = recipe.batch_for(len(x))
        self.events.put(("begin", self._begin_info(ds, built, plane, device)))
        throttle = Throttle(SNAPSHOT_S)
        spent = {"drawing": 0.0}
        run, done = self, {"epochs": 0, "per_epoch": -(-len(x) // batch)}

        def send_snapshot() -> None:
            t = time.perf_counter()
            run.events.put(("snapshot", self._snapshot(model, probe, plane, ds)))
            cost = time.perf_counter() - t
            spent["drawing"] += cost
            throttle.spent(cost)

        class Callbacks:
            def on_step(self, info: Any) -> None:
                first = done["epochs"] * done["per_epoch"]  # this fit's first step
                run.events.put(("step", (first + info.step, info.loss,
                                         done["epochs"] + info.epoch, info.batch)))
                if not IN_BROWSER and throttle.ready():  # the browser draws between epochs
                    send_snapshot()
                if run.cancelled.is_set():
                    info.stop, info.stop_reason = True, "cancelled"

            def on_epoch_end(self, info: Any) -> None:
                run.events.put(("epoch", (done["epochs"] + info.epoch, dict(info.logs))))
                if throttle.ready():
                    send_snapshot()
                if run.cancelled.is_set():
                    info.stop, info.stop_reason = True, "cancelled"

        t0 = time.perf_counter()
        why, on = "finished", device
        for _ in range(recipe.epochs):  # one epoch per fit: the browser yields in between
            if self.cancelled.is_set():
                why = "cancelled"
                break
            hist = engine.fit(model, built.loss, built.optimizer, (x, y), val=(xt, yt),
                              epochs=1, batch_size=batch, callbacks=[Callbacks()],
                              progress=False)
            done["epochs"] += 1
            on = hist.device or on
            if hist.stopped_reason:
                why = hist.stopped_reason
                break
            yield
        train_s = time.perf_counter() - t0 - spent["drawing"]
        model.eval()
        base = (engine.nn.functional.cross_entropy if ds.task == "classification"
                else engine.nn.functional.mse_loss)
        loss, acc = engine.train.evaluate(model, xt, yt, loss_fn=base)
        snap = self._snapshot(model, probe, plane, ds)
        self.events.put(("snapshot", snap))
        self.result = Result(ds.task, acc if ds.task == "classification" else loss, train_s,
                             on, device_name(on), done["epochs"], why, snap["dead"],
                             snap["saturated"], stats=explain.unit_stats(model, probe))
        self.finished = Finished(recipe, built.features.size, built.n_out,
                                 model.state_dict(), xt[:1], self.label())
        LATEST.publish(self.finished)  # host copies: other sessions rebuild it
        if s.forest and why == "finished":
            yield from self._forest(x, ds, plane)
        self.events.put(("done", self.result))

    def _forest(self, x: np.ndarray, ds: Dataset, plane: np.ndarray | None) -> Iterator[None]:
        """A random forest on the same inputs and split, its trees grown one by one."""
        from engine.forest import RandomForest

        n_trees = forest_trees(*x.shape)
        self.events.put(("status", f"training a random forest ({n_trees} trees)…"))
        forest = RandomForest(n_trees, task=ds.task, seed=self.recipe.seed)
        y = ds.y_train
        t0 = time.perf_counter()
        for done in forest.fit_steps(x, y):
            if self.cancelled.is_set():
                return
            if IN_BROWSER and done % 5 == 0:
                yield
        fit_s = time.perf_counter() - t0
        xt = self.built.features(ds.x_test)
        info: dict[str, Any] = {"trees": n_trees, "train_s": fit_s,
                                "metric": forest.score(xt, ds.y_test), "surface": None}
        if plane is not None:
            info["surface"] = (forest.predict_proba(plane) if ds.task == "classification"
                               else forest.predict(plane)[:, None])
        assert self.result is not None
        self.result.forest = info
        self.events.put(("forest", info))

    def _begin_info(self, ds: Dataset, built: Any, plane: np.ndarray | None, device: str
                    ) -> dict[str, Any]:
        return {"task": ds.task, "classes": ds.classes, "extent": ds.extent,
                "inputs": built.features.labels(ds.columns), "plane_inputs": plane,
                "widths": list(self.recipe.hidden), "n_out": built.n_out,
                "activation": self.recipe.activation,
                "device": device, "image_side": ds.image_side, "dataset": ds}

    def _snapshot(self, model: Any, probe: np.ndarray, plane: np.ndarray | None,
                  ds: Dataset) -> dict[str, Any]:
        """engine.mlp.snapshot, cut to what the page draws."""
        from engine import mlp

        snap = mlp.snapshot(model, probe, plane, ds.task)
        k = MAX_DRAWN_UNITS
        layers = [{"kind": v.kind, "units": len(v.low),
                   "grid": None if v.grid is None else v.grid[:, :k],
                   "low": v.low[:k], "high": v.high[:k], "dead": v.dead[:k],
                   "saturated": v.saturated[:k]} for v in snap.layers]
        out = {"layers": layers, "weights": [w[:k, :k] for w in snap.weights],
               "output": snap.output, "dead": snap.dead, "saturated": snap.saturated}
        if ds.image_side:
            out["images"] = snap.weights[0][:MAX_WEIGHT_IMAGES]
        return out
