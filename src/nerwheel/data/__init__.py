"""Data shipped with nerwheel."""
