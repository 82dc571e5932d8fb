"""``rnnsym train`` and ``rnnsym predict`` run as a user runs them: a subprocess, files, exit status."""
import csv
import json
import signal
import subprocess
import sys
import time

import pytest

import rnnsym as rs
from rnnsym.training import load_checkpoint, make_task, save_data


def rnnsym(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rnnsym", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_train_writes_its_files_and_predict_uses_them(tmp_path):
    out = tmp_path / "runs" / "first"
    run = rnnsym("train", "--net", "seed", "--task", "sentiment", "--optimizer", "sgd", "--lr", "0.5",
                 "--epochs", "20", "--size", "300", "--out", str(out), "--quiet")
    assert run.returncode == 0, run.stderr
    assert "accuracy" in run.stdout and "finished 20 epochs" in run.stdout
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.json", "history.csv", "loss.png", "params.json"]
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy"]
    assert [int(r["epoch"]) for r in rows] == list(range(21))
    assert (out / "loss.png").read_bytes().startswith(b"\x89PNG")
    model = json.loads((out / "params.json").read_text())
    assert model["network"]["name"] == "seed" and model["network"]["options"]["loss"] == "bce"
    assert model["epoch"] == 20 and model["seed"] == 0 and set(model["params"]) == set(rs.seed_rnn(4).param_names)
    # The same run in Python gives the same parameters: the command line adds nothing of its own.
    again = rs.train(rs.seed_rnn(steps=4), "sentiment", lr=0.5, epochs=20, size=300)
    assert all(model["params"][n] == float(again.params[n]) for n in again.params)

    data = make_task("sentiment", 4, 40, seed=5)
    save_data(tmp_path / "new.csv", data)
    predicted = rnnsym("predict", str(out), str(tmp_path / "new.csv"))
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.splitlines()
    assert lines[0] == "prediction,label" and len(lines) == 41
    expected = rs.predict(rs.seed_rnn(steps=4), again.params, data.x)
    assert [float(line.split(",")[0]) for line in lines[1:]] == expected.tolist()
    assert "40 sequences: loss" in predicted.stderr and "accuracy" in predicted.stderr


def test_train_on_a_data_file_takes_its_steps(tmp_path):
    save_data(tmp_path / "d.npz", make_task("sentiment", 3, 80, seed=1))
    run = rnnsym("train", "--data", str(tmp_path / "d.npz"), "--epochs", "2", "--quiet")
    assert run.returncode == 0, run.stderr
    assert "seed network (T = 3), d.npz" in run.stdout


def _bad_files(tmp_path):
    (tmp_path / "nan.csv").write_text("x1,x2,x3,x4,y\n0.1,nan,0.2,0.3,1\n")
    (tmp_path / "cols.csv").write_text("x1,x2,x3,x4,target\n0.1,0.2,0.2,0.3,1\n")
    (tmp_path / "labels.csv").write_text("x1,x2,x3,x4,y\n0.1,0.2,0.2,0.3,3\n")
    return tmp_path


ERRORS = [
    (["--lr", "0"], "learning rate lr must be a finite number > 0, got 0.0"),
    (["--lr", "-1"], "learning rate lr must be a finite number > 0"),
    (["--epochs", "0"], "epochs must be a positive integer"),
    (["--val-split", "1.5"], "val_split must lie in [0, 1)"),
    (["--data", "{tmp}/nan.csv"], "nan.csv, line 2, column 'x2': 'nan' is not finite"),
    (["--data", "{tmp}/cols.csv"], "unknown column 'target'"),
    (["--data", "{tmp}/labels.csv"], "label 3.0 is not 0 or 1; loss 'bce' needs labels in {0, 1}"),
    (["--data", "{tmp}/missing.csv"], "does not exist"),
    (["--task", "adding"], "2 input feature(s) per step; the network takes input_size=1"),
    (["--hidden-size", "8"], "option hidden_size applies to the elman, lstm, gru, seq2seq network(s), not to seed"),
    (["--resume", "{tmp}"], "no checkpoint.json or checkpoint.npz in that directory"),
    (["--momentum", "0.5"], "--momentum applies to --optimizer momentum, not sgd"),
]


@pytest.mark.parametrize("args, message", ERRORS, ids=[" ".join(a) for a, _ in ERRORS])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    _bad_files(tmp_path)
    run = rnnsym("train", *[a.replace("{tmp}", str(tmp_path)) for a in args], "--quiet", "--out", str(tmp_path / "o"))
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("rnnsym: error: ")
    assert message in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "o").exists()  # nothing written before the check


def test_predict_errors_are_one_line(tmp_path):
    (tmp_path / "d.csv").write_text("x1,x2,y\n1,2,0\n")
    run = rnnsym("predict", str(tmp_path), str(tmp_path / "d.csv"))
    assert run.returncode == 2 and run.stderr.startswith("rnnsym: error: ") and run.stderr.count("\n") == 1


def test_a_diverging_run_stops_with_its_reason_and_keeps_good_parameters(tmp_path):
    run = rnnsym("train", "--loss", "mse", "--output-activation", "identity", "--lr", "1", "--batch-size", "100",
                 "--epochs", "60", "--size", "100", "--quiet", "--out", str(tmp_path))
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("rnnsym: training stopped: the training loss grew")
    assert "at epoch 6; the learning rate may be too large; kept the parameters of epoch 5" in run.stderr
    assert json.loads((tmp_path / "params.json").read_text())["epoch"] == 5
    assert load_checkpoint(tmp_path / "checkpoint.json")["epoch"] == 5


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes_the_same_run(tmp_path):
    args = ["--lr", "0.5", "--epochs", "300", "--size", "200", "--checkpoint-every", "1"]
    process = subprocess.Popen([sys.executable, "-m", "rnnsym", "train", *args, "--out", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "checkpoint.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("the run finished before it could be interrupted")
    assert process.returncode == 130, stderr
    assert "interrupted after epoch" in stderr and f"rnnsym train --resume {tmp_path}" in stderr
    stopped_at = load_checkpoint(tmp_path / "checkpoint.json")["epoch"]
    assert 0 < stopped_at < 300
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    resumed = rnnsym("train", "--resume", str(tmp_path), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    model = json.loads((tmp_path / "params.json").read_text())
    whole = rs.train(rs.seed_rnn(steps=4), "sentiment", lr=0.5, epochs=300, size=200)
    assert model["epoch"] == 300
    assert all(model["params"][n] == float(whole.params[n]) for n in whole.params)
    with open(tmp_path / "history.csv", newline="") as f:
        assert [float(r["val_loss"]) for r in csv.DictReader(f)] == whole.history["val_loss"]


def test_resume_keeps_the_runs_settings(tmp_path):
    first = rnnsym("train", "--epochs", "2", "--size", "50", "--quiet", "--out", str(tmp_path))
    assert first.returncode == 0, first.stderr
    run = rnnsym("train", "--resume", str(tmp_path), "--lr", "0.3")
    assert run.returncode == 2 and "drop --lr" in run.stderr
    more = rnnsym("train", "--resume", str(tmp_path), "--epochs", "4", "--quiet")
    assert more.returncode == 0, more.stderr
    assert json.loads((tmp_path / "params.json").read_text())["epoch"] == 4


def test_elman_on_adding_from_the_command_line_takes_the_tasks_loss(tmp_path):
    run = rnnsym("train", "--net", "elman", "--hidden-size", "4", "--task", "adding", "--steps", "6",
                 "--optimizer", "adam", "--lr", "0.02", "--epochs", "2", "--size", "100", "--quiet",
                 "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr
    options = json.loads((tmp_path / "params.json").read_text())["network"]["options"]
    assert options["loss"] == "mse" and options["output_activation"] == "identity" and options["input_size"] == 2
    with open(tmp_path / "history.csv", newline="") as f:
        assert next(csv.reader(f)) == ["epoch", "train_loss", "val_loss"]


def test_training_benchmark_quick_mode_meets_its_reduced_targets():
    script = __file__.replace("tests/test_training_cli.py", "benchmarks/bench_training.py")
    run = subprocess.run([sys.executable, script, "--quick"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count(": MET") == 2 and "NOT MET" not in run.stdout and "DOES NOT" not in run.stdout
    assert run.stdout.count(": falls") == 3 and "identical" in run.stdout
