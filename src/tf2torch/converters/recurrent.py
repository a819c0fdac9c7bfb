"""Converters for recurrent ops (filled in as support lands)."""
