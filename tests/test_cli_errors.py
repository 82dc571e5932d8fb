"""The command line's error contract, for every command and every kind of failure.

A failure is exit status 2 and exactly one line on stderr, ``rnnsym: error: …``, with no
traceback, and nothing lost: every file that was there before is there after, byte for byte.
Kinds of failure: a bad value, an input that cannot be read, an output that cannot be written
(under /proc, where even root cannot write, and in a read-only folder, run as the user
``nobody`` because root ignores file modes), and damaged state (a checkpoint, a model file, a
site folder).
"""
import functools
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

CELLS = (
    "import sympy as sp\nimport rnnsym as rs\n"
    "h, x, a, u = sp.symbols('h x a u')\n"
    "ESC = rs.Cell(state=h, input=x, params=[a, u], update=sp.tanh(a * x + u * h), name='../../escape')\n")

SETPRIV = shutil.which("setpriv")
AS_NOBODY = [SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []


@functools.lru_cache(maxsize=1)
def _nobody_cannot_run_rnnsym() -> str:
    """Why the user nobody cannot run this interpreter with rnnsym (a virtual environment or a
    checkout in a folder only root may read), or "" when it can."""
    if not AS_NOBODY:
        return ""
    probe = subprocess.run([*AS_NOBODY, sys.executable, "-c", "import rnnsym"], capture_output=True, text=True,
                           cwd="/", timeout=120)
    return "" if probe.returncode == 0 else f"the user nobody cannot import rnnsym here: {probe.stderr.strip()[-200:]}"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A small run's folder: params.json, history.csv, loss.png and checkpoint.json."""
    run = tmp_path_factory.mktemp("trained") / "run"
    done = subprocess.run([sys.executable, "-m", "rnnsym", "train", "--epochs", "2", "--size", "40", "--quiet",
                           "--out", str(run)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return run


def _edit_json(path: Path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _checkpoint(**fields):
    return lambda world: _edit_json(world / "run" / "checkpoint.json", lambda d: d.update(fields))


def _model(change):
    return lambda world: _edit_json(world / "run" / "params.json", change)


def _write(name: str, content: str | bytes):
    def setup(world):
        (world / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            (world / name).write_bytes(content)
        else:
            (world / name).write_text(content)
    return setup


def _npz_checkpoint_with_list_metadata(world):
    import numpy as np

    (world / "run" / "checkpoint.json").unlink()
    np.savez(world / "run" / "checkpoint.npz", meta=np.array("[1]"), **{"params/w": np.zeros(())})


def _site_with_users_file(world):
    subprocess.run([sys.executable, "-m", "rnnsym", "docs", "--format", "markdown", "--no-check", "-T", "2",
                    "--out", str(world / "site")], check=True, capture_output=True, timeout=300)
    (world / "site" / "seed-T3.md").write_text("my own notes")


# (id, arguments, a fragment of the error line, how to prepare the folder, run as a non-root user)
CASES = [
    # ---- bad values ----------------------------------------------------------------------------
    ("derive bad steps", ["derive", "--steps", "0"], "Invalid value for '--steps'", None, False),
    ("derive unknown name", ["derive", "w9"], "unknown parameter, node or input 'w9'", None, False),
    ("derive option not for a cell", ["derive", "--cell", "cells.py:ESC", "--hidden-size", "3"],
     "--hidden-size does not apply to --cell", None, False),
    ("check negative seed", ["check", "--seed", "-5"], "seed must be a non-negative integer, got -5", None, False),
    ("check bad tolerance", ["check", "--tolerance", "-1"], "Invalid value for '--tolerance'", None, False),
    ("train bad learning rate", ["train", "--lr", "0", "--out", "new_run"], "learning rate lr must be", None, False),
    ("train too many steps", ["train", "--steps", "100000", "--out", "new_run"], "steps must be at most 10000",
     None, False),
    ("predict unknown option", ["predict", "run", "data.csv", "--bogus"], "No such option", None, False),
    ("docs bad format", ["docs", "--format", "pdf"], "'pdf' is not one of", None, False),
    ("flow bad scale", ["flow", "--scale=-1"], "--scale values must be positive", None, False),
    ("unknown command", ["nosuch"], "No such command 'nosuch'", None, False),
    # ---- inputs that cannot be read ------------------------------------------------------------
    ("derive missing cell file", ["derive", "--cell", "missing.py:ESC"], "--cell file 'missing.py' does not exist",
     None, False),
    ("check broken cell file", ["check", "--cell", "broken.py:ESC"], "running the file raised SyntaxError",
     _write("broken.py", "def f(:\n"), False),
    ("docs cell file that raises", ["docs", "--cell", "raises.py:ESC"], "running the file raised ValueError: no",
     _write("raises.py", "raise ValueError('no')\n"), False),
    ("train missing data", ["train", "--data", "missing.csv"], "does not exist", None, False),
    ("train binary data", ["train", "--data", "garbage.csv"], "garbage.csv: cannot read as UTF-8 CSV",
     _write("garbage.csv", bytes(range(128, 256))), False),
    ("train unreadable data", ["train", "--data", "secret.csv"], "secret.csv",
     lambda world: (_write("secret.csv", "x1,x2,x3,x4,y\n0,0,0,0,1\n")(world), os.chmod(world / "secret.csv", 0)),
     True),
    ("train resume without checkpoint", ["train", "--resume", "empty"], "no checkpoint.json",
     lambda world: (world / "empty").mkdir(), False),
    ("predict missing model", ["predict", "nothere", "data.csv"], "'nothere' does not exist", None, False),
    ("predict binary data", ["predict", "run", "garbage.npz"], "garbage.npz: not a readable .npz file",
     _write("garbage.npz", bytes(range(256))), False),
    # ---- outputs that cannot be written --------------------------------------------------------
    ("derive into /proc", ["derive", "w3", "--out", "/proc/rnnsym/w3.txt"],
     "cannot write '/proc/rnnsym/w3.txt': No such file or directory", None, False),
    ("docs into /proc", ["docs", "--out", "/proc/rnnsym-site"], "cannot write '/proc/rnnsym-site'", None, False),
    ("train into /proc", ["train", "--out", "/proc/rnnsym-run"], "cannot write '/proc/rnnsym-run'", None, False),
    ("flow into /proc", ["flow", "-T", "3", "--out", "/proc/flow.png"], "cannot write '/proc/flow.png'", None, False),
    ("predict into /proc", ["predict", "run", "data.csv", "--out", "/proc/p.csv"], "cannot write '/proc/p.csv'",
     None, False),
    ("derive onto a folder", ["derive", "w3", "--out", "run"], "'run' is a directory", None, False),
    ("derive into a read-only folder", ["derive", "w3", "--out", "ro/out.txt"],
     "cannot write 'ro/out.txt': Permission denied", None, True),
    ("docs into a read-only folder", ["docs", "--out", "ro/site"], "ro/site': Permission denied", None, True),
    ("train into a read-only folder", ["train", "--out", "ro/run"], "cannot write 'ro/run': Permission denied",
     None, True),
    ("flow into a read-only folder", ["flow", "-T", "3", "--out", "ro/flow.png"],
     "cannot write 'ro/flow.png': Permission denied", None, True),
    ("predict into a read-only folder", ["predict", "run", "data.csv", "--out", "ro/out.txt"],
     "cannot write 'ro/out.txt': Permission denied", None, True),
    ("train resume in a read-only folder", ["train", "--resume", "run", "--epochs", "4"],
     "cannot write 'run': Permission denied", lambda world: os.chmod(world / "run", 0o555), True),
    # ---- damaged state -------------------------------------------------------------------------
    ("checkpoint epoch", ["train", "--resume", "run"], "'epoch' must be an integer >= 0, got 'abc'",
     _checkpoint(epoch="abc"), False),
    ("checkpoint history", ["train", "--resume", "run"], "'history' must be an object, got 5",
     _checkpoint(history=5), False),
    ("checkpoint config", ["train", "--resume", "run"], "'config' must be an object, got []",
     _checkpoint(config=[]), False),
    ("checkpoint network", ["train", "--resume", "run"], "'network' must be an object, got 'seed'",
     _checkpoint(network="seed"), False),
    ("checkpoint optimizer step", ["train", "--resume", "run"], "'optimizer_step' must be an integer >= 0, got 'x'",
     _checkpoint(optimizer_step="x"), False),
    ("checkpoint cut short", ["train", "--resume", "run"], "checkpoint.json: not a readable JSON file",
     lambda world: (world / "run" / "checkpoint.json").write_text('{"format": "rnnsym-checkpoint", "epo'), False),
    ("npz checkpoint with damaged metadata", ["train", "--resume", "run"],
     "checkpoint.npz: damaged checkpoint metadata (not a JSON object)", _npz_checkpoint_with_list_metadata, False),
    ("model with 100000 steps", ["predict", "run", "data.csv"],
     "'network.steps' must be an integer from 1 to 10000, got 100000",
     _model(lambda d: d["network"].update(steps=100000)), False),
    ("model without a parameter", ["predict", "run", "data.csv"], "params.json: missing w0",
     _model(lambda d: d["params"].pop("w0")), False),
    ("docs over a folder that is not a site", ["docs", "--out", "notes"], "is not an rnnsym site",
     _write("notes/mine.txt", "mine"), False),
    ("docs over a user's file in a site", ["docs", "--format", "markdown", "--no-check", "-T", "3", "--out", "site"],
     "holds 'seed-T3.md', not written by rnnsym", _site_with_users_file, False),
]


def _world(trained_run: Path) -> Path:
    """A folder the command runs in: a trained run, data, a cell file, a read-only folder with a file."""
    world = Path(tempfile.mkdtemp(prefix="rnnsym-errors-"))
    os.chmod(world, 0o755)  # the user nobody must be able to enter it
    shutil.copytree(trained_run, world / "run")
    (world / "data.csv").write_text("x1,x2,x3,x4,y\n0.1,0.2,0.3,0.4,1\n0.4,0.3,0.2,0.1,0\n")
    (world / "cells.py").write_text(CELLS)
    (world / "out.txt").write_text("previous")
    (world / "ro").mkdir()
    (world / "ro" / "out.txt").write_text("previous")
    os.chmod(world / "ro", 0o555)
    (world / "mpl").mkdir(mode=0o777)
    os.chmod(world / "mpl", 0o777)
    return world


def _contents(world: Path) -> dict:
    """Every file under ``world`` with its bytes (unreadable ones by their mode): what must not change."""
    files = {}
    for path in sorted(world.rglob("*")):
        if path.is_file():
            mode = stat.S_IMODE(path.stat().st_mode)
            files[str(path.relative_to(world))] = path.read_bytes() if mode & 0o444 else mode
    return files


@pytest.mark.parametrize("args, fragment, prepare, as_nobody", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_failure_is_one_line_exit_2_and_loses_nothing(trained_run, args, fragment, prepare, as_nobody):
    if as_nobody and os.geteuid() == 0 and SETPRIV is None:
        pytest.skip("needs setpriv to run as a user that file modes apply to")
    if as_nobody and _nobody_cannot_run_rnnsym():
        pytest.skip(_nobody_cannot_run_rnnsym())
    world = _world(trained_run)
    try:
        if prepare is not None:
            prepare(world)
        before = _contents(world)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", MPLCONFIGDIR=str(world / "mpl"))
        prefix = AS_NOBODY if as_nobody else []
        run = subprocess.run([*prefix, sys.executable, "-m", "rnnsym", *args], cwd=world, env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 2, run.stdout + run.stderr
        assert "Traceback" not in run.stderr
        assert run.stderr.count("\n") == 1 and run.stderr.startswith("rnnsym: error: "), run.stderr
        assert fragment in run.stderr
        assert len(run.stderr) < 400
        assert _contents(world) == before  # nothing lost, nothing changed, no temporary file left
    finally:
        for folder in (world / "ro", world / "run"):
            os.chmod(folder, 0o755)
        shutil.rmtree(world)
