"""Importers for applications layers (filled in as support lands)."""
