"""Names the doctests in rnnsym's docstrings and README.md may use."""
import pytest

import rnnsym


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace.update(rnnsym=rnnsym, rs=rnnsym, seed_rnn=rnnsym.seed_rnn)
