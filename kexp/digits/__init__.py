"""The digits a model sees: MNIST sources with the offline fallback (data), the arrays prepared
for a run (inputs) and the augmentation applied while training (augment)."""
