"""What every step printer shares: dispatch on record type, SymPy-style."""
from __future__ import annotations

import sympy as sp


class StepPrinter:
    """Renders derivation records; subclasses define ``_print_<RecordClass>`` methods.

    As in SymPy's printers, the method is found through the record's class hierarchy, so every
    SymPy expression falls through to ``_print_Basic``.
    """

    def doprint(self, obj) -> str:
        if isinstance(obj, sp.Basic):  # every SymPy object goes to the expression printer
            return self._print_Basic(obj)
        for cls in type(obj).__mro__:
            method = getattr(self, f"_print_{cls.__name__}", None)
            if method is not None:
                return method(obj)
        raise TypeError(f"{type(self).__name__} cannot print {type(obj).__name__}")

    def _print_int(self, obj) -> str:
        return self.doprint(sp.Integer(obj))


def positive_terms_first(terms: list) -> list:
    """Put terms with a minus sign last, so ``o5 - Y`` prints as written rather than ``-Y + o5``."""
    return sorted(terms, key=lambda t: t.could_extract_minus_sign())
