"""The initializer study, `kexp compare`: plan (settings, folder layout, summary) -> sweep (one
process per training, via child) -> page (figure and index.html); command wires them."""
