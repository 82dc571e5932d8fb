"""The initialisation schemes, which live in :mod:`rnnsym.networks.initializers` (a core layer, so
that ``rs.to_torch`` in rnnsym.backends can draw a start as ``rs.train`` does); re-exported here."""
from ..networks.initializers import INITIALIZERS, init_params, param_roles, recurrent_param_names

__all__ = ["INITIALIZERS", "init_params", "param_roles", "recurrent_param_names"]
