"""Closed-loop experiments: the simulated loop, its choice model and the report."""
