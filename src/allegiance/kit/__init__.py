"""Feature-agnostic building blocks. Imports no feature."""
