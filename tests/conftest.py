import pytest

import rnnsym as rs


@pytest.fixture(scope="session")
def seed4():
    """The article's network, T = 4, defaults (tanh, sigmoid, BCE)."""
    return rs.seed_rnn(steps=4)
