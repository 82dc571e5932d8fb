"""Numbers: symbolic graphs compiled to NumPy source, and the gradient checker."""
