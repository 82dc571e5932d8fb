"""The ``rnnsym`` command line. ``common`` holds what every command shares; ``main`` the group.

The entry point is :func:`rnnsym.cli.main.main`; subsystems define their commands beside their
code (``rnnsym/training/cli.py``, ``rnnsym/docs/cli.py``) from :mod:`rnnsym.cli.common`.
"""
