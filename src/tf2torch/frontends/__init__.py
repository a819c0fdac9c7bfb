"""Frontends turn a source model (file or live object) into an IR Graph."""
