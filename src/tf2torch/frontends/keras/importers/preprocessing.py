"""Importers for preprocessing layers (filled in as support lands)."""
