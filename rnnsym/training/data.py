"""Data for training: a Dataset, its checks against a network, and CSV / .npz files.

File layout (both formats hold the same thing: ``N`` sequences of ``T`` steps):

- **.npz**: two arrays, ``x`` of shape ``(N, T)`` or ``(N, T, input_size)`` and ``y`` of shape
  ``(N,)`` (one target per sequence) or ``(N, T)`` (one target per step). Loaded with
  ``allow_pickle=False``; any other array in the file is an error.
- **CSV**: a header row, then one sequence per row. Inputs are columns ``x1 … xT`` (one feature per
  step) or ``x1_1, x1_2, … xT_k`` (step, then feature, for ``k`` features); targets are one column
  ``y`` or columns ``y1 … yT``. Every cell is a number.

::

    x1,x2,x3,x4,y
    0.3,-0.9,0.1,0.8,1
    -0.5,0.2,0.7,-0.6,0

>>> import numpy as np
>>> ds = Dataset(np.zeros((3, 4)), np.array([0.0, 1.0, 1.0]), name="demo")
>>> ds.steps, ds.input_size, len(ds)
(4, 1, 3)
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import RnnsymError


@dataclass(frozen=True)
class Dataset:
    """Sequences ``x`` (N, T) or (N, T, k) and targets ``y`` (N,) or (N, T), with a name.

    ``suggested`` holds the network options that suit the data (a built-in task's loss, output
    activation, outputs and input size); the command line uses them when none are given.
    """

    x: np.ndarray
    y: np.ndarray
    name: str = "data"
    description: str = ""
    suggested: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def steps(self) -> int:
        return int(self.x.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.x.shape[2]) if self.x.ndim == 3 else 1

    @property
    def per_step(self) -> bool:
        """True when there is a target at every step (``y`` is (N, T))."""
        return self.y.ndim >= 2 and self.y.shape[1] == self.steps and self.y.ndim == self.x.ndim

    def fingerprint(self) -> str:
        """SHA-256 of the arrays, so a resumed run can tell that it sees the same data."""
        digest = hashlib.sha256()
        for array in (self.x, self.y):
            array = np.ascontiguousarray(array, dtype=np.float64)
            digest.update(repr(array.shape).encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def subset(self, index) -> "Dataset":
        return Dataset(self.x[index], self.y[index], self.name, self.description, self.suggested)


# ---- checks: one clear line, before any training ------------------------------------------------
def as_dataset(x, y, name: str = "data") -> Dataset:
    """Arrays checked for shape, numbers and finiteness, as a Dataset."""
    x = _numeric(f"{name}: x", x)
    y = _numeric(f"{name}: y", y)
    if x.ndim not in (2, 3) or x.shape[0] < 1 or x.shape[1] < 1 or (x.ndim == 3 and x.shape[2] < 1):
        raise RnnsymError(f"{name}: x must have shape (N, T) or (N, T, input_size) with N, T >= 1, got {x.shape}")
    if y.ndim == 0 or y.shape[0] != x.shape[0]:
        raise RnnsymError(f"{name}: y must have one target per sequence (first axis {x.shape[0]}), got shape {y.shape}")
    return Dataset(x, y, name)


def _numeric(what: str, value) -> np.ndarray:
    if value is None:  # np.asarray(None, dtype=float) is NaN: say what is wrong instead
        raise RnnsymError(f"{what} is missing (None); give an array of numbers")
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):
        raise RnnsymError(f"{what} must hold numbers only") from None
    if np.iscomplexobj(raw):  # casting would drop the imaginary part with only a NumPy warning
        raise RnnsymError(f"{what} holds complex numbers (dtype {raw.dtype}); data must be real numbers")
    if raw.dtype == object:
        for index, item in np.ndenumerate(raw):
            if item is None or isinstance(item, complex):
                raise RnnsymError(f"{what} holds {item!r} at index {tuple(int(i) for i in index)}; "
                                  f"data must be real numbers")
    try:
        array = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        raise RnnsymError(f"{what} must hold numbers only") from None
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise RnnsymError(f"{what} holds {float(array[where])!r} at index {where}; data must be finite numbers")
    return array


def check_for_network(data: Dataset, net) -> Dataset:
    """The data, reshaped where harmless, if it fits ``net``; otherwise a clear error.

    Checks the number of steps, the input size, the target shape for the network's outputs
    (``"last"``: one per sequence, ``"all"``: one per step), for the BCE loss labels in {0, 1}, and
    for cross-entropy either one-hot rows or class labels 0 … C−1 (made one-hot here).
    """
    x, y = data.x, data.y
    T, k = net.steps, net.input_size
    if x.shape[1] != T:
        raise RnnsymError(f"{data.name}: sequences have {x.shape[1]} steps; the network has steps={T}")
    if data.input_size != k:
        raise RnnsymError(f"{data.name}: {data.input_size} input feature(s) per step; the network takes input_size={k}")
    if x.ndim == 3 and k == 1:
        x = x[:, :, 0]
    outputs = net.options.get("outputs", "last")
    output_size = int(net.options.get("output_size", 1))
    # a decoder's steps are its own (rnnsym.seq2seq); any other network's outputs follow its inputs
    lead = (x.shape[0],) if outputs == "last" else (x.shape[0], int(net.options.get("target_steps", T)))
    want = lead if output_size == 1 else lead + (output_size,)
    if output_size == 1 and y.shape == want + (1,):
        y = y.reshape(want)
    if net.options.get("loss") == "cross_entropy" and y.shape == lead and output_size > 1:
        # class labels 0 … C−1, one per sequence (or step), become one-hot rows
        labels = np.asarray(y)
        if not np.all(labels == np.round(labels)) or labels.min() < 0 or labels.max() >= output_size:
            bad = labels[(labels != np.round(labels)) | (labels < 0) | (labels >= output_size)].flat[0]
            raise RnnsymError(f"{data.name}: class label {float(bad)!r} is not one of 0 … {output_size - 1}")
        y = np.eye(output_size)[labels.astype(int)]
    if y.shape != want:
        shown = "(" + ", ".join(["N", *map(str, want[1:])]) + ("," if len(want) == 1 else "") + ")"
        raise RnnsymError(f"{data.name}: y has shape {y.shape}; a network with outputs={outputs!r} "
                          f"and output_size={output_size} needs {shown}")
    if net.options.get("loss") == "bce":
        bad = (y != 0) & (y != 1)
        if bad.any():
            raise RnnsymError(f"{data.name}: label {float(y[bad][0])!r} is not 0 or 1; loss 'bce' needs labels in {{0, 1}}")
    return Dataset(x, y, data.name, data.description, data.suggested)


# ---- files -----------------------------------------------------------------------------------
def load_data(path, *, targets: bool = True) -> Dataset:
    """A Dataset from a ``.csv`` or ``.npz`` file in the layout above, checked on load.

    With ``targets=False`` (for predictions) the targets may be left out; ``y`` is then empty.
    """
    path = Path(path)
    if not path.is_file():
        raise RnnsymError(f"data file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path, targets)
    if suffix == ".csv":
        return _load_csv(path, targets)
    raise RnnsymError(f"data file {path.name!r}: unknown format {suffix or '(none)'!r}; allowed: .csv, .npz")


def save_data(path, data: Dataset) -> None:
    """Write ``data`` as ``.csv`` or ``.npz`` (by the suffix), atomically."""
    from ..files import atomic_write_bytes, atomic_write_text

    path = Path(path)
    if path.suffix.lower() == ".npz":
        buffer = io.BytesIO()
        np.savez(buffer, x=data.x, y=data.y)
        atomic_write_bytes(path, buffer.getvalue())
    elif path.suffix.lower() == ".csv":
        atomic_write_text(path, _csv_text(data))
    else:
        raise RnnsymError(f"data file {path.name!r}: unknown format {path.suffix or '(none)'!r}; allowed: .csv, .npz")


def _load_npz(path: Path, targets: bool) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = sorted(archive.files)
            if names != ["x", "y"] and (targets or names != ["x"]):
                raise RnnsymError(f"{path.name}: a data file holds exactly the arrays 'x' and 'y', found: "
                                  f"{', '.join(names) or 'none'}")
            x = archive["x"]
            y = archive["y"] if "y" in names else None
    except RnnsymError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise RnnsymError(f"{path.name}: not a readable .npz file without pickled objects ({exc})") from None
    return _with_targets(x, y, path.name)


def _with_targets(x, y, name: str) -> Dataset:
    if y is None:  # inputs only, for predictions: an empty target per sequence
        dataset = as_dataset(x, np.zeros(np.shape(x)[:1]), name)
        return Dataset(dataset.x, np.zeros((len(dataset), 0)), name)
    return as_dataset(x, y, name)


_X_COLUMN = re.compile(r"^x(\d+)(?:_(\d+))?$")
_Y_COLUMN = re.compile(r"^y(\d*)$")


def _load_csv(path: Path, targets: bool) -> Dataset:
    try:
        # utf-8-sig: spreadsheets save a byte-order mark, which would otherwise stick to the first column's name
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise RnnsymError(f"{path.name}: cannot read as UTF-8 CSV ({exc})") from None
    rows = [r for r in rows if r]  # a trailing blank line is harmless
    if len(rows) < 2:
        raise RnnsymError(f"{path.name}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    x_cols, y_cols = _layout(path.name, header, targets)
    values = np.empty((len(rows) - 1, len(header)))
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise RnnsymError(f"{path.name}, line {i}: {len(row)} values; the header has {len(header)} columns")
        for j, cell in enumerate(row):
            try:
                values[i - 2, j] = float(cell)  # float() parses numbers only; nothing is evaluated
            except ValueError:
                raise RnnsymError(f"{path.name}, line {i}, column {header[j]!r}: {cell!r} is not a number") from None
            if not np.isfinite(values[i - 2, j]):
                raise RnnsymError(f"{path.name}, line {i}, column {header[j]!r}: {cell!r} is not finite; "
                                  f"data must be finite numbers")
    x = values[:, x_cols]
    steps = len({_X_COLUMN.match(header[j]).group(1) for j in x_cols})
    x = x.reshape(len(x), steps, -1)
    if x.shape[2] == 1:
        x = x[:, :, 0]
    if not y_cols:
        return _with_targets(x, None, path.name)
    y = values[:, y_cols]
    y = y[:, 0] if len(y_cols) == 1 and header[y_cols[0]] == "y" else y
    return as_dataset(x, y, path.name)


def _layout(name: str, header: list[str], targets: bool = True) -> tuple[list[int], list[int]]:
    """Column indexes of the inputs (in step, feature order) and the targets; checks the header."""
    x_keys, y_keys = {}, {}
    for j, column in enumerate(header):
        if (m := _X_COLUMN.match(column)):
            x_keys[(int(m.group(1)), int(m.group(2) or 1))] = j
        elif (m := _Y_COLUMN.match(column)):
            y_keys[int(m.group(1) or 0)] = j
        else:
            raise RnnsymError(f"{name}: unknown column {column!r}; allowed: x1..xT (or xT_k for k features), "
                              f"then y (or y1..yT)")
    if len(x_keys) + len(y_keys) != len(header):
        raise RnnsymError(f"{name}: a column name appears twice in the header")
    if not x_keys or (targets and not y_keys):
        raise RnnsymError(f"{name}: needs input columns x1..xT and a target column y (or y1..yT); "
                          f"header is {','.join(header)}")
    steps = max(t for t, _ in x_keys)
    features = max(k for _, k in x_keys)
    expected = {(t, k) for t in range(1, steps + 1) for k in range(1, features + 1)}
    if set(x_keys) != expected or (features > 1 and any(_X_COLUMN.match(header[j]).group(2) is None
                                                        for j in x_keys.values())):
        raise RnnsymError(f"{name}: input columns must be x1..x{steps}" +
                          (f" with features _1.._{features} each" if features > 1 else "") + " with none missing")
    if 0 in y_keys and len(y_keys) > 1:
        raise RnnsymError(f"{name}: use either one target column y or columns y1..yT, not both")
    if y_keys and 0 not in y_keys and set(y_keys) != set(range(1, steps + 1)):
        raise RnnsymError(f"{name}: per-step targets must be columns y1..y{steps}")
    return [x_keys[key] for key in sorted(x_keys)], [y_keys[key] for key in sorted(y_keys)]


def _csv_text(data: Dataset) -> str:
    T, k = data.steps, data.input_size
    x_names = [f"x{t}" for t in range(1, T + 1)] if k == 1 else \
        [f"x{t}_{j}" for t in range(1, T + 1) for j in range(1, k + 1)]
    y = data.y.reshape(len(data), -1)
    y_names = ["y"] if y.shape[1] == 1 and data.y.ndim == 1 else [f"y{t}" for t in range(1, y.shape[1] + 1)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(x_names + y_names)
    for xs, ys in zip(data.x.reshape(len(data), -1), y):
        writer.writerow([repr(float(v)) for v in (*xs, *ys)])
    return out.getvalue()
