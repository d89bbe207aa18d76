"""Training a run: the one loop where data, model and callbacks meet (trainer), the callbacks
that record kernels, checkpoints and forces, and the handling of stop signals. With kexp.network,
kexp.digits (inputs, augment) and kexp.probes.keras_views, the only code that imports TensorFlow."""
