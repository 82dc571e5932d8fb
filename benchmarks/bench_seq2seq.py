"""Encoder–decoder networks with attention: rnnsym against PyTorch eager autograd of the same model.

    python benchmarks/bench_seq2seq.py            # the issue's sizes: S = T = 20, hidden 32, batch 64
    python benchmarks/bench_seq2seq.py --quick    # small sizes, seconds (run by the tests)

The peer is tests/torch_seq2seq.py, written from the standard equations (nn.GRU for the cells, the
attention by hand, batched over the decoder steps as a PyTorch user writes it). Both compute in
float64 on the CPU; rnnsym's loss and gradients are checked against the peer's before anything is
timed; the two are timed in turns (bench_speed.interleaved) and each given the median of its
rounds. Also timed once: building the network, compiling it, and deriving one encoder weight.

Targets (the issue's): value_and_grad no slower than PyTorch eager (ratio <= 1.0); build and
compile under 5 s; the derivation of one encoder weight under 5 s. A full run exits with status 1
where one is missed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE), str(HERE.parent / "tests")]

import rnnsym as rs  # noqa: E402
from bench_speed import interleaved  # noqa: E402

SIZES = {"full": dict(S=20, T=20, I=8, H=32, V=10, batch=64, rounds=31),
         "quick": dict(S=4, T=3, I=2, H=4, V=5, batch=8, rounds=3)}


def once(f):
    start = time.perf_counter()
    value = f()
    return value, time.perf_counter() - start


def measure(attention: str, encoder: str, decoder: str, sizes: dict) -> dict:
    import torch
    from torch_seq2seq import TorchSeq2seq

    S, T, I, H, V, B = (sizes[k] for k in ("S", "T", "I", "H", "V", "batch"))
    net, build_s = once(lambda: rs.seq2seq(encoder, decoder, source_steps=S, target_steps=T, input_size=I,
                                           hidden_size=H, output_size=V, attention=attention))
    compiled, compile_s = once(net.compile)
    weight = "W_ih" if encoder == "elman" else ("W_ii" if encoder == "lstm" else "W_ir")
    _, derive_s = once(lambda: net.derive(weight).text())
    model = TorchSeq2seq(encoder, decoder, attention, I, H, V)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(B, S, I)), rng.integers(0, V, size=(B, T))
    params = model.params()
    tx, ty = torch.tensor(x), torch.tensor(y)
    onehot = torch.nn.functional.one_hot(ty, V).double()

    def torch_step():
        model.zero_grad()
        loss = torch.nn.functional.cross_entropy(model.logits(tx, onehot).reshape(-1, V), ty.reshape(-1))
        loss.backward()
        return loss.item()

    def ours():
        return compiled.value_and_grad(params, x, y)

    value, grads = ours()
    expected = torch_step()
    reference = model.gradients()
    worst = max(float(np.max(np.abs(grads[k] - reference[k]) / (np.abs(reference[k]) + 1e-12))) for k in grads)
    if abs(value - expected) > 1e-9 * abs(expected) or worst > 1e-6:
        raise SystemExit(f"{attention}: rnnsym and PyTorch disagree (loss {value} vs {expected}, worst rel {worst:.2g})")
    times = interleaved({"rnnsym": ours, "torch": torch_step}, sizes["rounds"], burst=3)
    return dict(build=build_s, compile=compile_s, derive=derive_s, ours=times["rnnsym"], torch=times["torch"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds), for the tests")
    parser.add_argument("--threads", type=int, choices=(1, 0), default=0,
                        help="1: PyTorch on one thread (a busy machine); 0: every core (default)")
    args = parser.parse_args(argv)
    sizes = SIZES["quick" if args.quick else "full"]
    import torch

    torch.set_num_threads(1 if args.threads == 1 else os.cpu_count() or 1)
    print(f"load average {os.getloadavg()[0]:.2f}; S={sizes['S']} T={sizes['T']} hidden={sizes['H']} "
          f"batch={sizes['batch']}, float64, CPU, GRU encoder and decoder")
    print(f"{'attention':<10} {'build s':>8} {'compile s':>10} {'derive s':>9} {'rnnsym ms':>10} {'torch ms':>9} {'ratio':>6}")
    missed = []
    for attention in ("dot", "general", "additive"):
        r = measure(attention, "gru", "gru", sizes)
        ratio = r["ours"] / r["torch"]
        print(f"{attention:<10} {r['build']:8.2f} {r['compile']:10.2f} {r['derive']:9.2f} {r['ours'] * 1e3:10.2f} "
              f"{r['torch'] * 1e3:9.2f} {ratio:6.2f}")
        if ratio > 1.0:
            missed.append(f"{attention}: value_and_grad {ratio:.2f} times PyTorch eager")
        if r["build"] + r["compile"] > 5 or r["derive"] > 5:
            missed.append(f"{attention}: build + compile {r['build'] + r['compile']:.1f} s, derive {r['derive']:.1f} s")
    for line in missed:
        print("missed:", line)
    return 1 if missed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
