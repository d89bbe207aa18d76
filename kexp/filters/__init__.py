"""Numbers about filters, with numpy alone: how far they moved, how edge-like they are, how many
are really different (analysis), and the reference convolution loops with the questions'
hand-made filters (convolution)."""
