"""The backward walk's mathematics: local partials and Jacobian terms, chain-rule paths (the
article's view), truncation windows and the table of backward rules (rnnsym.engine.rules). The
recursive view is the adjoint program built from these (rnnsym.program). Pure math over a Graph;
it never imports a printer."""
from .local import local_partial
from .paths import PathLimitError, count_paths, enumerate_paths, path_term
from .rules import RULES, TermKind

__all__ = ["local_partial", "PathLimitError", "count_paths", "enumerate_paths", "path_term", "RULES", "TermKind"]
