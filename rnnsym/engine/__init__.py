"""The backward walk: local partials, chain-rule paths (the article's view) and adjoints (the
recursive view). Pure math over a Graph; it never imports a printer."""
from .local import local_partial
from .paths import PathLimitError, count_paths, enumerate_paths, path_term
from .adjoints import adjoints

__all__ = ["local_partial", "PathLimitError", "count_paths", "enumerate_paths", "path_term", "adjoints"]
