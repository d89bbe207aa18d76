"""Experiments built only from the kexp core; the core never imports them."""
