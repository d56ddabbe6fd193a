"""Adversarial tests: each names a contract violation once found on main (see docstrings)."""
