"""Experiments built only from kexp's core; the core never imports them."""
