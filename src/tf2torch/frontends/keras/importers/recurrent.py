"""Importers for recurrent layers (filled in as support lands)."""
