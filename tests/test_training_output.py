"""What a training run shows and says: the progress count, the summary table, a diverging or
pointless run in one line; and data that is refused in one line (complex, missing) or read as a
spreadsheet saves it (a byte-order mark); ``check --tolerance`` naming its own value."""
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest

import rnnsym as rs
from rnnsym.errors import RnnsymError
from rnnsym.training import load_checkpoint, load_data, make_task


def rnnsym(*args):
    return subprocess.run([sys.executable, "-m", "rnnsym", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def seed_net():
    return rs.seed_rnn(steps=4)


# ---- progress ---------------------------------------------------------------------------------
def test_on_epoch_is_called_once_per_epoch_run_not_for_the_starting_point(seed_net, tmp_path):
    seen = []
    rs.train(seed_net, "sentiment", epochs=3, size=40, checkpoint=tmp_path / "c.json", on_epoch=seen.append)
    assert [row["epoch"] for row in seen] == [1, 2, 3]  # a bar counting calls ends at 3 of 3, not 4
    seen.clear()
    rs.train(seed_net, "sentiment", epochs=5, size=40, resume=tmp_path / "c.json", on_epoch=seen.append)
    assert [row["epoch"] for row in seen] == [4, 5]


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path):
    run = rnnsym("train", "--epochs", "3", "--size", "40")
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""


def test_the_progress_bar_is_still_shown_on_a_terminal(tmp_path):
    main, other = pty.openpty()
    # A new pseudo-terminal is 0 columns wide, and tqdm draws nothing in 0 columns.
    fcntl.ioctl(other, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        process = subprocess.Popen([sys.executable, "-m", "rnnsym", "train", "--epochs", "3", "--size", "40"],
                                   stdout=subprocess.DEVNULL, stderr=other)
        os.close(other)
        seen = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal's other end closed: the command has finished
                break
            if not chunk:
                break
            seen += chunk
        assert process.wait(timeout=120) == 0
    finally:
        os.close(main)
    text = seen.decode(errors="replace")
    assert "epoch" in text and "/3" in text


# ---- the summary table --------------------------------------------------------------------------
def test_the_table_stays_aligned_for_any_loss_and_prints_inf_and_nan_as_such(seed_net):
    result = rs.train(seed_net, "sentiment", epochs=2, size=40)
    widths = None
    # 0.693147, 246775, 2.65681e+295, inf, nan, 1.5e-09: never 180 digits, never 0.000000
    for loss in (0.693147180, 246775.188153, 2.656811696724528e+295, float("inf"), float("nan"), 1.5e-9):
        result.history["train_loss"][-1] = loss
        lines = result.table().splitlines()
        loss_line = next(line for line in lines if line.startswith("loss"))
        shape = [len(line) for line in lines[:-1]]
        widths = widths or shape
        assert shape == widths, lines  # every row as wide as the header, whatever the loss
        assert loss_line.split()[1] == f"{loss:.6g}"


def test_the_table_says_which_epoch_of_the_epochs_asked(seed_net):
    done = rs.train(seed_net, "sentiment", epochs=3, size=40)
    assert done.table().splitlines()[-1].startswith("epoch 3 of 3; finished 3 epochs;")
    net = rs.seed_rnn(steps=4, output_activation="identity", loss="mse")
    diverged = rs.train(net, "sentiment", lr=1.0, batch_size=100, epochs=20, size=100)
    assert diverged.table().splitlines()[-1].startswith(f"epoch 5 of 20 (stopped at epoch 6); the training loss grew")


# ---- a run that diverges without ever reaching infinity ---------------------------------------
def test_a_huge_learning_rate_is_a_diverged_run_not_a_finished_one(seed_net):
    result = rs.train(seed_net, "sentiment", lr=1e6, epochs=20, size=100)
    assert result.diverged and result.epoch == 0 and result.stopped_at == 1
    assert result.stop_reason.startswith("the training loss grew from 0.627092 to 129588 (over 1000 times its start) "
                                         "at epoch 1")
    assert result.final["train_loss"] == result.history["train_loss"][0]


def test_the_command_line_stops_a_huge_learning_rate_in_one_line_and_exit_2(tmp_path):
    run = rnnsym("train", "--lr", "1e6", "--epochs", "20", "--size", "100", "--out", str(tmp_path))
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.count("\n") == 1 and "the training loss grew from 0.627092 to 129588" in run.stderr
    assert "kept the parameters of epoch 0" in run.stderr and "Traceback" not in run.stderr
    assert load_checkpoint(tmp_path / "checkpoint.json")["epoch"] == 0


# ---- a resumed run with nothing left to do ------------------------------------------------------
def test_resuming_with_no_more_epochs_than_were_run_is_refused(seed_net, tmp_path):
    path = tmp_path / "c.json"
    rs.train(seed_net, "sentiment", epochs=4, size=40, checkpoint=path)
    for epochs in (2, 4):
        with pytest.raises(RnnsymError, match=f"resume: the checkpoint has run 4 epochs already; epochs must be "
                                              f"more than 4 to go on, got {epochs}"):
            rs.train(seed_net, "sentiment", epochs=epochs, size=40, resume=path)


def test_the_command_line_refuses_resuming_with_fewer_epochs(tmp_path):
    assert rnnsym("train", "--epochs", "3", "--size", "40", "--quiet", "--out", str(tmp_path)).returncode == 0
    before = (tmp_path / "params.json").read_bytes()
    run = rnnsym("train", "--resume", str(tmp_path), "--epochs", "2")
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "resume: the checkpoint has run 3 epochs already; epochs must be more than 3 to go on, got 2" in run.stderr
    assert (tmp_path / "params.json").read_bytes() == before


# ---- data ---------------------------------------------------------------------------------------
def test_a_csv_with_a_byte_order_mark_reads_like_one_without(tmp_path):
    text = "x1,x2,x3,y\n0.5,-1,2,1\n0.1,0.2,0.3,0\n"
    (tmp_path / "plain.csv").write_text(text, encoding="utf-8")
    (tmp_path / "bom.csv").write_text(text, encoding="utf-8-sig")
    assert (tmp_path / "bom.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    plain, bom = load_data(tmp_path / "plain.csv"), load_data(tmp_path / "bom.csv")
    assert np.array_equal(plain.x, bom.x) and np.array_equal(plain.y, bom.y)


def test_complex_data_is_refused_not_cut_to_its_real_part(tmp_path):
    data = make_task("sentiment", 4, 10, seed=0)
    np.savez(tmp_path / "c.npz", x=data.x * (1 + 1j), y=data.y)
    with pytest.raises(RnnsymError, match=r"c.npz: x holds complex numbers \(dtype complex128\); data must be real"):
        load_data(tmp_path / "c.npz")
    with pytest.raises(RnnsymError, match="data: y holds complex numbers"):
        rs.train(rs.seed_rnn(steps=4), (data.x, data.y + 0j), epochs=1)
    with pytest.raises(RnnsymError, match=r"data: x holds 1j at index \(0, 1\)"):
        rs.train(rs.seed_rnn(steps=2), (np.array([[0.5, 1j]], dtype=object), [1.0]), epochs=1)


def test_complex_npz_on_the_command_line_is_one_line_without_a_numpy_warning(tmp_path):
    data = make_task("sentiment", 4, 10, seed=0)
    np.savez(tmp_path / "c.npz", x=data.x + 1j, y=data.y)
    run = rnnsym("train", "--data", str(tmp_path / "c.npz"), "--epochs", "1")
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "holds complex numbers" in run.stderr
    assert "Warning" not in run.stderr


def test_missing_arrays_are_called_missing_not_nan():
    x = np.zeros((3, 4))
    with pytest.raises(RnnsymError, match=r"data: x is missing \(None\); give an array of numbers"):
        rs.train(rs.seed_rnn(steps=4), (None, [0, 1, 1]), epochs=1)
    with pytest.raises(RnnsymError, match=r"data: y is missing \(None\)"):
        rs.train(rs.seed_rnn(steps=4), (x, None), epochs=1)
    with pytest.raises(RnnsymError, match=r"data: x holds None at index \(0, 2\)"):
        rs.train(rs.seed_rnn(steps=4), ([[0, 1, None, 2]], [1]), epochs=1)
    with pytest.raises(RnnsymError, match=r"x: x is missing \(None\)"):
        rs.predict(rs.seed_rnn(steps=4), {n: 0.0 for n in rs.seed_rnn(steps=4).param_names}, None)


# ---- check --tolerance --------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_check_tolerance_that_is_not_a_finite_positive_number_names_tolerance(value):
    run = rnnsym("check", "--tolerance", value)
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert f"tolerance (--tolerance: the largest relative error that passes) must be a finite number > 0, " \
           f"got {value}" in run.stderr
    assert "eps" not in run.stderr


def test_gradcheck_names_the_setting_that_is_wrong():
    with pytest.raises(RnnsymError, match="^tolerance .* got nan$"):
        rs.gradcheck(rs.seed_rnn(steps=2), tolerance=float("nan"))
    with pytest.raises(RnnsymError, match="^eps .* got -1.0$"):
        rs.gradcheck(rs.seed_rnn(steps=2), eps=-1.0)
    with pytest.raises(RnnsymError, match="^tolerance .* got '1e-6'$"):
        rs.gradcheck(rs.seed_rnn(steps=2), tolerance="1e-6")
