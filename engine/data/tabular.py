"""A user's table of numbers (a CSV file) for the Playground, and train/test splits.

`read_csv` turns the bytes of an uploaded CSV into float32 feature columns and a label
column: text or integer labels make a classification problem (any number of classes),
float labels a regression problem; `Table.as_task` switches between the two where that
makes sense. The file is only read as text with the standard library's `csv` module and
each cell matched against a number pattern: nothing in it is evaluated or executed.

A file that cannot be used raises `CSVError` with one sentence naming the row (as a
spreadsheet numbers it, the header being row 1) or the column, and what to do.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, replace

import numpy as np

MAX_ROWS = 10_000
MAX_COLUMNS = 100
MAX_CLASSES = 50
MIN_ROWS = 8
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
MISSING = {"", "na", "n/a", "nan", "null", "none", "?", "-"}
TASKS = ("classification", "regression")


class CSVError(ValueError):
    """The file cannot be used; the message names the row or column and the fix."""


@dataclass(frozen=True)
class Table:
    """Numeric features and a label column read from a CSV file."""

    x: np.ndarray                 # float32 (n, features)
    y: np.ndarray                 # int64 class codes, or float32 targets for regression
    features: tuple[str, ...]     # column names of x
    label: str                    # the label column's name
    task: str                     # "classification" or "regression"
    detected: str                 # the task read_csv chose from the labels
    classes: tuple[str, ...]      # class names in code order ('' for regression)
    raw_labels: tuple[str, ...]   # the label cells as written (for switching the task)
    rows: tuple[int, ...] = ()    # each data row's row number in the file

    def as_task(self, task: str) -> Table:
        """The same table as a classification or a regression problem."""
        if task == "auto":
            task = self.detected
        if task == self.task:
            return self
        if task not in TASKS:
            raise CSVError(f"unknown task {task!r}; choose classification or regression")
        if task == "regression":
            return replace(self, y=_regression_targets(self.raw_labels, self.label, self.rows),
                           task=task, classes=())
        y, classes = _class_codes(self.raw_labels, self.label)
        return replace(self, y=y, task=task, classes=classes)

    def describe(self) -> str:
        n, f = self.x.shape
        what = (f"classification, {len(self.classes)} classes ({', '.join(self.classes[:6])}"
                f"{', …' if len(self.classes) > 6 else ''})" if self.task == "classification"
                else "regression (a number to predict)")
        auto = "detected" if self.task == self.detected else f"switched; detected {self.detected}"
        return (f"{n} rows, {f} feature column{'s' * (f != 1)}, label '{self.label}': "
                f"{what} [{auto}]")


def _is_number(cell: str) -> bool:
    return bool(NUMBER.match(cell))


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    if b"\0" in data[:4096]:
        raise CSVError("this is not a text file (it contains NUL bytes); save the table "
                       "as CSV (comma-separated values) and upload that")
    for enc in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise CSVError("the file is not UTF-8 text; save it as CSV with UTF-8 encoding")


def _rows(text: str, max_rows: int) -> tuple[list[int], list[list[str]]]:
    """(the file's row number of each non-blank row, its cells)."""
    first = text.lstrip().split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count) if any(d in first for d in ",;\t") else ","
    numbers: list[int] = []
    rows: list[list[str]] = []
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        for row in reader:
            if not any(c.strip() for c in row):
                continue  # blank lines
            if len(rows) > max_rows:  # header + max_rows data rows already
                raise CSVError(f"the file has more than {max_rows:,} data rows (row "
                               f"{reader.line_num} is over the limit); upload a sample of "
                               f"at most {max_rows:,} rows")
            numbers.append(reader.line_num)
            rows.append([c.strip() for c in row])
    except csv.Error as exc:
        raise CSVError(f"row {reader.line_num} cannot be read as CSV ({exc}); check its "
                       "quotes") from None
    return numbers, rows


def _class_codes(labels: tuple[str, ...], name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    numeric = all(_is_number(v) for v in labels)
    uniq = sorted(set(labels), key=(lambda v: float(v)) if numeric else str)
    if len(uniq) < 2:
        raise CSVError(f"the label column '{name}' has only one class ({uniq[0]!r}); a "
                       "classifier needs at least two different labels")
    if len(uniq) > MAX_CLASSES:
        raise CSVError(f"the label column '{name}' has {len(uniq)} different values, more "
                       f"than {MAX_CLASSES} classes; switch the task to regression or "
                       "choose another label column")
    if numeric and all(float(v).is_integer() for v in uniq):
        uniq_names = [str(int(float(v))) for v in uniq]
    else:
        uniq_names = list(uniq)
    code = {v: i for i, v in enumerate(uniq)}
    return np.array([code[v] for v in labels], np.int64), tuple(uniq_names)


def _regression_targets(labels: tuple[str, ...], name: str, rows: tuple[int, ...]
                        ) -> np.ndarray:
    for i, v in enumerate(labels):
        if not _is_number(v):
            at = rows[i] if rows else i + 2
            raise CSVError(f"row {at}, column '{name}': {v!r} is not a number, so the labels "
                           "cannot be regressed; use classification")
    return np.array([float(v) for v in labels], np.float32)


def read_csv(data: bytes | str, label: str | None = None, task: str = "auto",
             max_rows: int = MAX_ROWS) -> Table:
    """A Table from CSV text: a header row, numeric feature columns, one label column
    (`label`, default the last column). `task`: "auto" (text labels or a few integer
    values: classification; other numbers: regression), "classification" or "regression".
    """
    if task not in ("auto", *TASKS):
        raise CSVError(f"unknown task {task!r}; choose auto, classification or regression")
    numbers, rows = _rows(_decode(data), max_rows)
    if not rows:
        raise CSVError("the file is empty; upload a CSV with a header row and data rows")
    header = rows[0]
    if all(_is_number(c) for c in header):
        raise CSVError(f"no header: the first row ({', '.join(header[:4])}"
                       f"{', …' if len(header) > 4 else ''}) is all numbers; add a first row "
                       "with a name for each column")
    if len(header) < 2:
        raise CSVError("the file has one column; it needs at least one feature column and "
                       "a label column, separated by commas")
    if len(header) > MAX_COLUMNS + 1:
        raise CSVError(f"the file has {len(header)} columns; the limit is {MAX_COLUMNS} "
                       "feature columns and a label column")
    for j, name in enumerate(header):
        if not name:
            raise CSVError(f"column {j + 1} has no name in the header row; name every column")
        if name in header[:j]:
            raise CSVError(f"two columns are named '{name}' (columns {header.index(name) + 1} "
                           f"and {j + 1}); give each column its own name")
    label = header[-1] if label is None else label
    if label not in header:
        raise CSVError(f"there is no column '{label}'; the columns are {', '.join(header)}")
    body, numbers = rows[1:], numbers[1:]
    text = [j for j, c in enumerate(header) if not _is_number(c)]
    if len(text) == 1 and any(len(r) > text[0] and r[text[0]] == header[text[0]]
                              for r in body):  # e.g. "1.2,3.4,cat" over rows of the same
        raise CSVError(f"no header: the first row ({', '.join(header[:4])}"
                       f"{', …' if len(header) > 4 else ''}) looks like data (its only text, "
                       f"{header[text[0]]!r}, is also a value further down); add a first row "
                       "with a name for each column")
    if len(body) < MIN_ROWS:
        raise CSVError(f"the file has {len(body)} data rows; at least {MIN_ROWS} are needed "
                       "to train and test")
    li = header.index(label)
    features = [j for j in range(len(header)) if j != li]
    x = np.empty((len(body), len(features)), np.float32)
    for i, row in enumerate(body):
        at = numbers[i]
        if len(row) != len(header):
            raise CSVError(f"row {at} has {len(row)} values but the header has "
                           f"{len(header)} columns; every row needs one value per column")
        for k, j in enumerate(features):
            cell = row[j]
            if cell.lower() in MISSING:
                raise CSVError(f"row {at}, column '{header[j]}' has a missing value "
                               f"({cell!r}); fill it in or remove the row")
            if not _is_number(cell):
                raise CSVError(f"row {at}, column '{header[j]}': {cell!r} is not a number; "
                               "feature columns must be numeric (only the label column may "
                               "hold text)")
            x[i, k] = float(cell)
        if row[li].lower() in MISSING:
            raise CSVError(f"row {at}, column '{label}' (the label) has a missing value "
                           f"({row[li]!r}); fill it in or remove the row")
    if not np.isfinite(x).all():
        i, k = np.argwhere(~np.isfinite(x))[0]
        raise CSVError(f"row {numbers[i]}, column '{header[features[k]]}' is too large for a "
                       "32-bit float; rescale that column")
    raw = tuple(row[li] for row in body)
    detected = _detect(raw)
    chosen = detected if task == "auto" else task
    table = Table(x=x, y=np.zeros(len(raw), np.int64),
                  features=tuple(header[j] for j in features), label=label, task="",
                  detected=detected, classes=(), raw_labels=raw, rows=tuple(numbers))
    return table.as_task(chosen)


def _detect(labels: tuple[str, ...]) -> str:
    """Text labels, or integers with few distinct values: classification; else regression."""
    if not all(_is_number(v) for v in labels):
        return "classification"
    values = {float(v) for v in labels}
    if all(v.is_integer() for v in values) and len(values) <= min(MAX_CLASSES,
                                                                  max(2, len(labels) // 5)):
        return "classification"
    return "regression"


def split(x: np.ndarray, y: np.ndarray, train_fraction: float = 0.5, seed: int = 0
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): a seeded shuffle cut at train_fraction; both
    parts keep at least one row."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be between 0 and 1, got {train_fraction}")
    n = len(x)
    if n < 2:
        raise ValueError(f"need at least 2 rows to split, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    k = min(max(int(round(n * train_fraction)), 1), n - 1)
    tr, te = order[:k], order[k:]
    return x[tr], y[tr], x[te], y[te]


__all__ = ["read_csv", "Table", "CSVError", "split", "MAX_ROWS", "TASKS"]
