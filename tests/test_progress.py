"""Progress bars of long work: only past a number of items, only when stderr is a terminal."""
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from rnnsym.progress import progress


def test_short_work_is_given_back_as_it_is():
    items = list(range(10))
    assert progress(items, "work", "item") is items


def test_long_work_off_a_terminal_prints_nothing(capsys):
    assert sum(progress(range(3000), "work", "item")) == sum(range(3000))
    assert capsys.readouterr().err == ""


def test_long_work_on_a_terminal_shows_a_bar():
    main, other = pty.openpty()
    fcntl.ioctl(other, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # tqdm draws nothing in 0 columns
    code = "from rnnsym.progress import progress\nfor _ in progress(range(3000), 'compiling', 'node'): pass\n"
    process = subprocess.Popen([sys.executable, "-c", code], stderr=other)
    os.close(other)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the other end closed: the process has finished
            break
        if not chunk:
            break
        seen += chunk
    assert process.wait(timeout=60) == 0
    assert b"compiling" in seen
