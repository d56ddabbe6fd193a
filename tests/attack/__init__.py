"""Adversarial tests: each failing test names a contract violation found on main (see docstrings)."""
