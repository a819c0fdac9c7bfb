"""Importers for attention layers (filled in as support lands)."""
