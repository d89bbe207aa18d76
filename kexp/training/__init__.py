"""Training a run: the one loop where data, model and callbacks meet (trainer), the callbacks
that record kernels, checkpoints and forces, and the handling of stop signals. The only folder,
with kexp.network and kexp.digits.inputs, that imports TensorFlow."""
