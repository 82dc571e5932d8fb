"""Writing files: atomic, never outside the folder asked for, and one clear error when it cannot be done."""
import os

import pytest

from rnnsym.errors import RnnsymError
from rnnsym.files import WriteError, atomic_write_text, check_writable, inside, safe_name


def test_atomic_write_replaces_the_file(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two" and os.listdir(tmp_path) == ["a.txt"]


def test_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    target.write_text("previous")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new")
    assert target.read_text() == "previous" and os.listdir(tmp_path) == ["a.txt"]


def test_interrupt_just_after_the_rename_is_still_a_keyboard_interrupt(tmp_path, monkeypatch):
    # Ctrl-C can land between the rename and the end of the write: the temporary file is gone.
    target = tmp_path / "a.txt"
    rename = os.replace

    def renamed_then_interrupted(src, dst):
        rename(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", renamed_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["a.txt"]


def test_a_file_that_cannot_be_written_is_one_error_naming_it():
    # /proc refuses new files even to root; the message names the path asked for, not a temporary file.
    with pytest.raises(WriteError) as caught:
        atomic_write_text("/proc/rnnsym-test/out.txt", "x")
    assert str(caught.value) == "cannot write '/proc/rnnsym-test/out.txt': No such file or directory"
    assert isinstance(caught.value, RnnsymError) and isinstance(caught.value, OSError)


def test_check_writable_refuses_an_unwritable_folder_and_leaves_no_trace(tmp_path):
    check_writable(tmp_path / "a" / "b")
    assert os.listdir(tmp_path) == []  # the folders made to find out are gone again
    with pytest.raises(WriteError, match="cannot write '/proc/run/sub'"):
        check_writable("/proc/run/sub")
    (tmp_path / "file").write_text("x")
    with pytest.raises(WriteError, match="cannot write .*file/run'"):
        check_writable(tmp_path / "file" / "run")


@pytest.mark.parametrize("name, stem", [
    ("../../escape", "escape"), ("/etc/passwd", "etc-passwd"), ("", "network"), ("..", "network"),
    ("ÄÖ", "network"), ("my cell v2", "my-cell-v2"), ("lstm_2-b", "lstm_2-b"), ("a\nb", "a-b"),
])
def test_safe_name_keeps_only_letters_digits_dash_and_underscore(name, stem):
    assert safe_name(name) == stem


def test_inside_refuses_a_path_that_leaves_its_folder(tmp_path):
    assert inside(tmp_path, "a.md") == tmp_path.resolve() / "a.md"
    for name in ("../a.md", "/tmp/a.md", "sub/../../a.md", "."):
        with pytest.raises(RnnsymError, match="outside the output folder"):
            inside(tmp_path, name)
    (tmp_path / "link").symlink_to(tmp_path.parent)
    with pytest.raises(RnnsymError, match="outside the output folder"):
        inside(tmp_path, "link/a.md")


def test_a_ctrl_c_during_an_atomic_write_waits_for_the_write_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    """Under load, a Ctrl-C once landed between the temporary file's creation and the code that
    removes it on failure, and left a .tmp file beside a checkpoint (the training Ctrl-C test)."""
    import os
    import signal
    import sys

    import pytest

    import tempfile as tempfile_module

    real_mkstemp = tempfile_module.mkstemp

    def interrupted_mkstemp(*args, **kwargs):  # the interrupt arrives just as the file exists
        made = real_mkstemp(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return made

    monkeypatch.setattr(tempfile_module, "mkstemp", interrupted_mkstemp)
    target = tmp_path / "checkpoint.json"
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "complete")
    assert target.read_text() == "complete"  # the write finished before the interrupt was raised
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.json"]
    assert sys.exc_info() == (None, None, None)
