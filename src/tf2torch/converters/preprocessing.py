"""Converters for preprocessing ops (filled in as support lands)."""
