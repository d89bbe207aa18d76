"""What each filter responds to: feature maps, the patches that excite it most and its optimal
input, replayed from a run's saved kernels with numpy (filter_views) or computed from any Keras
model (keras_views, which needs TensorFlow for the gradients of the optimal inputs)."""
