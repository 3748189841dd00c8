"""What every training recipe shares: options, checkpoints, evaluation and the model card.

Checkpoints are one `.npz` (no pickle): model state under ``model/``, optimizer buffers
under ``opt/``, and a JSON string with everything else (epoch, scheduler, history, RNG).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import engine
import engine.onnx  # noqa: F401  (engine.onnx.export below)
from engine import nn, optim
from engine import random as erandom
from engine.nn.utils import model_device
from engine.train import predict

ROOT = Path(__file__).resolve().parent.parent


def parser(name: str, epochs: int, batch_size: int, lr: float) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"python build.py train {name}")
    ap.add_argument("--device", default="auto", help="cpu, gpu or auto (default)")
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--batch-size", type=int, default=batch_size)
    ap.add_argument("--lr", type=float, default=lr, help="peak learning rate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None, help="dataset folder (default: $DEMYSTIFY_DATA)")
    ap.add_argument("--out", default=str(ROOT / "webapp" / "models"),
                    help="where the .onnx model and its card go")
    ap.add_argument("--checkpoint", default=None,
                    help=f"checkpoint file (default: checkpoints/{name}.npz)")
    ap.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    ap.add_argument("--export-only", action="store_true",
                    help="skip training: evaluate and export the checkpoint's weights")
    return ap


# -- checkpoints ------------------------------------------------------------------------

def holdout(x: np.ndarray, y: np.ndarray, n: int, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_val, y_val, x_train, y_train): n examples held out, the same number from every
    class, chosen by a fixed seed (the same split whatever the training seed).

    Why not "the last n": a dataset stored class by class (the CIFAR-10 image folders)
    would hold out a single class and unbalance the training set."""
    classes = np.unique(y)
    if n % len(classes):
        raise ValueError(f"hold out a multiple of {len(classes)} examples, not {n}")
    rng = np.random.default_rng(seed)
    per = n // len(classes)
    val = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per] for c in classes])
    val = np.sort(val)
    train = np.setdiff1d(np.arange(len(y)), val, assume_unique=True)
    return x[val], y[val], x[train], y[train]


def one_cycle(opt: Any, args: argparse.Namespace, n_train: int, **options: Any) -> Any:
    """The one-cycle schedule every recipe uses: peak --lr, over --epochs of n_train."""
    steps = -(-n_train // args.batch_size)
    return optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                                         steps_per_epoch=steps, **options)


def shuffled_batches(x: np.ndarray, y: np.ndarray, batch_size: int, rng: np.random.Generator,
                     augment: Callable[[np.ndarray], np.ndarray] | None = None
                     ) -> Callable[[], Any]:
    """An epoch's batches in a fresh order each time; `augment` transforms each input batch."""
    def batches():
        order = rng.permutation(len(x))
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            yield (x[idx] if augment is None else augment(x[idx])), y[idx]
    return batches


def save_checkpoint(path: Path, model: nn.Module, opt: Any, sched: Any, meta: dict) -> None:
    arrays: dict[str, np.ndarray] = {f"model/{k}": v for k, v in model.state_dict().items()}
    ost = opt.state_dict()
    for idx, st in ost["state"].items():
        for k, v in st.items():
            arrays[f"opt/{idx}/{k}"] = np.asarray(v)
    meta = {**meta, "param_groups": [{k: v for k, v in g.items()} for g in ost["param_groups"]],
            "scheduler": _jsonable(sched.state_dict()) if sched is not None else None,
            "rng": erandom.generator().bit_generator.state}
    arrays["meta"] = np.array(json.dumps(meta, default=_json_default))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)  # never leave a half-written checkpoint behind


def load_checkpoint(path: Path, model: nn.Module, opt: Any, sched: Any) -> dict:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        model.load_state_dict({k[6:]: z[k] for k in z.files if k.startswith("model/")})
        state: dict[int, dict[str, Any]] = {}
        for k in z.files:
            if k.startswith("opt/"):
                _, idx, name = k.split("/", 2)
                state.setdefault(int(idx), {})[name] = z[k]
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    if sched is not None and meta.get("scheduler"):
        sched.load_state_dict(meta["scheduler"])
    erandom.generator().bit_generator.state = meta["rng"]
    return meta


def _jsonable(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, list, bool, type(None)))}


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


class Checkpointer:
    """fit() callback: a checkpoint after every epoch, so a run can be resumed."""

    def __init__(self, path: Path, model: nn.Module, opt: Any, sched: Any, first_epoch: int,
                 log: list[str]) -> None:
        self.path, self.model, self.opt, self.sched = path, model, opt, sched
        self.first_epoch, self.log = first_epoch, log

    def on_epoch_end(self, info: Any) -> None:
        h = info.history
        epoch = self.first_epoch + h.epochs
        line = f"epoch {epoch}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in h.items() if v)
        self.log.append(line)
        print(line, flush=True)
        save_checkpoint(self.path, self.model, self.opt, self.sched,
                        {"epoch": epoch, "log": self.log})


# -- evaluation and the model card ------------------------------------------------------

def predict_classes(model: nn.Module, x: np.ndarray, batch: int = 500) -> np.ndarray:
    model.eval()
    return predict(model, x, batch).argmax(1)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(y_true * n + y_pred, minlength=n * n).reshape(n, n)


def write_card(out_dir: Path, name: str, card: dict, classes: list[str],
               cm: np.ndarray) -> None:
    """Model card as JSON (machine-readable) and Markdown (for people)."""
    per_class = (np.diag(cm) / cm.sum(1)).tolist()
    card = {**card, "per_class_accuracy": dict(zip(classes, per_class)),
            "confusion_matrix": cm.tolist(), "classes": classes}
    (out_dir / f"{name}.json").write_text(json.dumps(card, indent=1, default=_json_default))
    rows = "\n".join(f"| {c} | {a * 100:.2f}% |" for c, a in zip(classes, per_class))
    header = "| true \\ predicted | " + " | ".join(classes) + " |"
    sep = "|---" * (len(classes) + 1) + "|"
    cm_rows = "\n".join(f"| **{c}** | " + " | ".join(str(v) for v in r) + " |"
                        for c, r in zip(classes, cm))
    log = "\n".join(card.get("log", []))
    md = f"""# {card['title']}

{card['summary']}

| | |
|---|---|
| test accuracy | **{card['test_accuracy'] * 100:.2f}%** ({card['test_set']}) |
| architecture | {card['architecture']} |
| parameters | {card['parameters']:,} |
| data | {card['data']} |
| recipe | {card['recipe']} |
| command | `{card['command']}` |
| seed | {card['seed']} |
| device | {card['device']} |
| training wall time | {card['wall_time_s'] / 60:.1f} min |
| engine | demystify {engine.__version__}, Python {platform.python_version()} |

## Per-class accuracy

| class | accuracy |
|---|---|
{rows}

## Confusion matrix (rows: true class)

{header}
{sep}
{cm_rows}

## Training log

```
{log}
```
"""
    (out_dir / f"{name}.md").write_text(md)


def train_and_ship(name: str, args: argparse.Namespace, model: nn.Module, opt: Any,
                   sched: Any, batches: Callable[[], Any], loss_fn: Callable,
                   val: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                   classes: list[str], card: dict) -> float:
    """Train (resuming if asked) with a checkpoint per epoch, then evaluate on the test set,
    export `<out>/<name>.onnx` and write its model card. Returns the test accuracy."""
    ckpt = Path(args.checkpoint or ROOT / "checkpoints" / f"{name}.npz")
    meta: dict[str, Any] = {"epoch": 0, "log": [], "wall_time_s": 0.0}
    if args.resume or args.export_only:
        meta = load_checkpoint(ckpt, model, opt, sched)
        print(f"resumed from {ckpt} after epoch {meta['epoch']}")
    remaining = 0 if args.export_only else args.epochs - meta["epoch"]
    if remaining > 0:
        cb = Checkpointer(ckpt, model, opt, sched, meta["epoch"], meta["log"])
        _, wall = timed(lambda: engine.fit(
            model, loss_fn, opt, batches, val=val, metrics=["accuracy"], epochs=remaining,
            scheduler=sched, callbacks=[cb]))
        meta["wall_time_s"] = meta.get("wall_time_s", 0.0) + wall
        meta["log"] = cb.log
        save_checkpoint(ckpt, model, opt, sched, {**meta, "epoch": args.epochs})

    xte, yte = test
    device = model_device(model)
    pred = predict_classes(model, xte)
    acc = float((pred == yte).mean())
    print(f"test accuracy {acc * 100:.2f}% on {card['test_set']}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    engine.onnx.export(model.to("cpu"), engine.Tensor(xte[:1]), out / f"{name}.onnx")
    write_card(out, name, {
        **card, "test_accuracy": acc, "parameters": sum(p.size for p in model.parameters()),
        "command": command_line(), "seed": args.seed, "device": device,
        "wall_time_s": meta["wall_time_s"], "log": meta["log"]},
        classes, confusion(yte, pred, len(classes)))
    print(f"wrote {out / (name + '.onnx')} and its model card")
    return acc


def command_line() -> str:
    return "python build.py train " + " ".join([Path(sys.argv[0]).stem.replace("train_", "")]
                                                + sys.argv[1:])


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    return fn(), time.perf_counter() - t0
