"""For learners: check a formula derived by hand against rnnsym's derivation.

An application layer, like training: it uses the derivations and the network, and no lower layer
imports it.
"""
from .parse import Formula, parse_formula
from .verify import Verdict, verify

__all__ = ["Formula", "Verdict", "parse_formula", "verify"]
