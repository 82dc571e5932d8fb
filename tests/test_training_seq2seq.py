"""Training encoder–decoder networks: the reverse and copy tasks, greedy decoding against a PyTorch
decoder written here, held-out sequence accuracy, the attention heat map and the command line."""
import subprocess
import sys

import numpy as np
import pytest

import rnnsym as rs
from rnnsym.training.decode import attention_map, greedy_decode, sequence_accuracy


def rnnsym(*args):
    return subprocess.run([sys.executable, "-m", "rnnsym", *args], capture_output=True, text=True, timeout=300)


def test_the_reverse_and_copy_tasks_hold_what_they_say():
    rev = rs.make_task("reverse", 6, 50, seed=2)
    symbols = rev.x.argmax(axis=-1)
    assert rev.x.shape == (50, 6, 10) and np.array_equal(rev.x.sum(axis=-1), np.ones((50, 6)))
    assert np.array_equal(rev.y, symbols[:, ::-1])
    assert rev.suggested["net"] == "seq2seq" and rev.suggested["target_steps"] == 6
    copy = rs.make_task("copy", 7, 50, seed=2)
    source = copy.x.argmax(axis=-1)
    assert copy.y.shape == (50, 4) and np.array_equal(copy.y, source[:, :4])
    assert (source[:, 4:] == 0).all() and (source[:, :4] > 0).all()  # three blanks after symbols 1 … 9
    assert np.array_equal(rs.make_task("reverse", 6, 50, seed=2).x, rev.x)  # the same seed, the same data
    with pytest.raises(rs.RnnsymError, match=r"the copy task needs steps > 3 \(symbols, then 3 blanks\), got 3"):
        rs.make_task("copy", 3, 10)


def test_greedy_decoding_feeds_the_decoder_its_own_predictions_as_pytorch_does():
    torch = pytest.importorskip("torch")
    from torch_seq2seq import TorchSeq2seq

    model = TorchSeq2seq("gru", "lstm", "general", 3, 4, 5, seed=7)
    net = rs.seq2seq("gru", "lstm", source_steps=4, target_steps=3, input_size=3, hidden_size=4, output_size=5,
                     attention="general")
    x = np.random.default_rng(0).normal(size=(6, 4, 3))
    outputs = greedy_decode(net.compile().forward, model.params(), x, 3, 5)
    # by hand in PyTorch: the previous step's most probable symbol is the next step's input
    with torch.no_grad():
        symbols = torch.zeros(6, 3, dtype=torch.long)
        for t in range(3):
            logits = model.logits(torch.tensor(x), torch.nn.functional.one_hot(symbols, 5).double())
            symbols[:, t] = logits[:, t].argmax(-1)
    assert np.array_equal(outputs.argmax(axis=-1), symbols.numpy())
    np.testing.assert_allclose(outputs, torch.softmax(logits, -1).numpy(), rtol=1e-12, atol=1e-14)


def test_reverse_with_attention_is_learnt_to_a_held_out_sequence_accuracy_of_99_percent():
    net = rs.seq2seq("gru", "gru", source_steps=5, target_steps=5, input_size=10, hidden_size=16, output_size=10,
                     attention="dot")
    result = rs.train(net, "reverse", optimizer="adam", lr=0.02, epochs=8, batch_size=32, size=1500, seed=0)
    assert result.history["val_accuracy"][-1] >= 0.99, result.history["val_accuracy"]
    # the accuracy is of whole sequences decoded greedily: recomputed here from held-out data
    fresh = rs.make_task("reverse", 5, 200, seed=99)
    predicted = rs.predict(net, result.params, fresh.x)
    assert sequence_accuracy(predicted, np.eye(10)[fresh.y.astype(int)]) >= 0.97
    assert np.mean(np.all(predicted.argmax(-1) == fresh.y, axis=-1)) >= 0.97
    # and the attention it learnt reads the source backwards: step t looks at step S + 1 − t
    _, weights = attention_map(net, result.params, fresh.x[:20])
    assert np.mean(weights.argmax(axis=-1) == np.arange(4, -1, -1)) >= 0.95
    assert weights.shape == (20, 5, 5) and np.allclose(weights.sum(axis=-1), 1.0)


def test_train_from_the_command_line_writes_the_attention_heat_map_and_resumes(tmp_path):
    out = tmp_path / "rev"
    run = rnnsym("train", "--task", "reverse", "--attention", "dot", "--hidden-size", "8", "--steps", "4",
                 "--optimizer", "adam", "--lr", "0.02", "--epochs", "2", "--size", "200", "--out", str(out), "-q")
    assert run.returncode == 0, run.stderr
    assert "seq2seq network" in run.stdout
    assert sorted(p.name for p in out.iterdir()) == ["attention.png", "checkpoint.json", "history.csv", "loss.png",
                                                     "params.json"]
    assert (out / "attention.png").read_bytes().startswith(b"\x89PNG")
    again = rnnsym("train", "--resume", str(out), "--epochs", "3", "-q")
    assert again.returncode == 0, again.stderr
    assert "finished 3 epochs" in again.stdout or "epoch 3 of 3" in again.stdout


@pytest.mark.parametrize("args,message", [
    (["--net", "elman", "--task", "sentiment", "--attention", "dot"], "--attention applies to --net seq2seq, not elman"),
    (["--task", "reverse", "--steps", "4", "--target-steps", "3"], "y has shape"),
    (["--task", "copy", "--steps", "2"], "the copy task needs steps > 3"),
])
def test_bad_seq2seq_training_options_exit_2_with_one_line(args, message):
    run = rnnsym("train", *args, "--epochs", "1", "--size", "20", "-q")
    assert run.returncode == 2 and message in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
