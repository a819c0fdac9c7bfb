"""Converters for attention ops (filled in as support lands)."""
