"""Atomic writes: an interrupted write leaves the previous file whole and no temporary file behind."""
import os

import pytest

from rnnsym.files import atomic_write_text


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
