"""The roofline benchmark: its work count against a count by hand, its bound against its terms, and
its quick run, where no contender may beat the bound by more than 2× (that would mean the work is
miscounted or a peak is wrong)."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPT = BENCHMARKS / "roofline.py"


def _roofline():
    spec = importlib.util.spec_from_file_location("roofline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_work_of_a_small_elman_network_is_the_count_by_hand():
    # T = 3, B = 2, I = 4, H = 5, one output. Forward: input product 2·3·2·4·5 = 240 FLOPs, recurrent
    # products for steps 2 and 3 (h_0 = 0) 2·2·2·5·5 = 200, readout 2·2·5 = 20. Backward: the input
    # weights' gradient 240, the recurrent weights' gradient and the carried adjoint 200 each, the
    # readout's gradient and the adjoint of h_3 20 each. 460 + 680 = 1140.
    # Activations: 3·2·5 tanh, and an exp and a log per example for the loss: 30 + 4 = 34.
    # Doubles moved: x twice 2·24 = 48, h_t written and read 2·30 = 60, the 61 weights read and their
    # gradients written 122, the 2 targets: 232 doubles, 1856 bytes.
    assert _roofline().work("elman", steps=3, batch=2, input_size=4, hidden_size=5) == {
        "flops": 1140, "activations": 34, "bytes": 1856}


def test_the_work_of_a_scalar_lstm_is_the_count_by_hand():
    # T = 2, B = 1, I = H = 1: four gates. Forward: input 2·2·4 = 16, recurrent (step 2 only) 2·4 = 8,
    # readout 2; backward: 16, 8 + 8, 2 + 2. 26 + 36 = 62. Activations: 5 per step, 10, and the
    # loss's 2. Doubles: x twice 4; four gates, c and tanh(c) per step written and read 2·6·2 = 24;
    # 4·(1 + 1 + 2) + 2 = 18 weights twice 36; one target. 65 doubles, 520 bytes.
    assert _roofline().work("lstm", steps=2, batch=1) == {"flops": 62, "activations": 12, "bytes": 520}


def test_the_bound_adds_products_and_activations_and_takes_memory_where_it_is_slower():
    roofline = _roofline()
    peaks = {"gflops64": 1.0, "activation_ns": 2.0, "cores": 2, "copy_gbs": 1.0}
    compute = roofline.bound({"flops": 2e9, "activations": 1e9, "bytes": 1e9}, peaks)
    assert compute == {"matmul": 2.0, "activations": 1.0, "memory": 1.0, "bound": 3.0, "by": "compute"}
    memory = roofline.bound({"flops": 2e9, "activations": 1e9, "bytes": 4e9}, peaks)
    assert memory["bound"] == 4.0 and memory["by"] == "memory"


def test_the_tables_go_between_the_markers_and_the_rest_of_the_file_stays(tmp_path):
    roofline = _roofline()
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Title\n\n## Distance\n\n{roofline.MARKERS[0]}\nold table\n{roofline.MARKERS[1]}\n\n## Next\ntext\n")
    roofline.write_markdown(str(doc), ["| new | table |"])
    assert doc.read_text() == (f"# Title\n\n## Distance\n\n{roofline.MARKERS[0]}\n| new | table |\n"
                               f"{roofline.MARKERS[1]}\n\n## Next\ntext\n")


def test_an_unknown_case_or_a_bad_round_count_is_refused_in_one_line():
    for args, message in ((["--cases", "elman64,gru9"], "--cases: no case 'gru9'; the cases are scalar_elman, elman64"),
                          (["--rounds", "0"], "--rounds: '0' is not a whole number of at least 1")):
        run = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and run.stdout == ""
        assert len(run.stderr.strip().splitlines()) == 1 and message in run.stderr, run.stderr


def test_the_quick_run_bounds_every_case_and_no_contender_beats_its_bound_by_2x(tmp_path):
    pytest.importorskip("torch")
    out, markdown = tmp_path / "roofline.json", tmp_path / "roofline.md"
    run = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out), "--markdown", str(markdown)],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    cases = ("scalar_elman", "elman64", "lstm32", "elman256", "lstm128")
    for text in ("float64", "GB/s", "ns per element per core", "load average", "bound ms", *cases):
        assert text in run.stdout, text
    written = json.loads(out.read_text())
    peaks = written["peaks"]
    assert peaks["gflops64"] > 0 and peaks["copy_gbs"] > 0 and 0 < peaks["activation_ns"] < 100
    assert set(written["results"]) == set(cases)
    for name, r in written["results"].items():
        assert r["bound"]["bound"] > 0, name
        assert {"rnnsym", "torch"} <= set(r["times"]), name
        for contender, seconds in r["times"].items():
            assert seconds / r["bound"]["bound"] > 0.5, (name, contender, seconds, r["bound"])
    assert "| case | bound ms | rnnsym ms | rnnsym × |" in markdown.read_text()
