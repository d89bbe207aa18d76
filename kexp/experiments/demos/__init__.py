"""`kexp demo NAME`: one small experiment per claim of the questions, with one figure each.

The three questions answer "how are the numbers in a CNN filter decided?". Each numbered
item of issue 3 is one `demo_*` function in the module of its group: it computes the claim on real
MNIST digits (the offline mnist-5k subset, so every demo runs without network), returns the
measured numbers and draws one figure. Where an answer is wrong, the demo says so and shows the
correction. `kexp demo all` (what `make demos` runs) writes the figures, summary.json and
summary.txt under <runs-dir>/demos/.

    common             demo-run settings, DemoContext, the Keras training start, figure pieces
    initialization     1 random start from the stated distribution (KS tests), 7 glorot's bounds
    learned_filters    2 backprop moves the filters, 8 filters are the weights, 10 edge-likeness
    peak_filter        3 the [-1 1 -1] peak filter, 4 learning it from a random start
    designed_filters   5 kernels cut from images, 6 hand-designed filters, frozen or trainable
    cross_correlation  9 'valid' shapes, 11 the 1-D worked example, 12 Conv2D = cross-correlation
    flip_invariance    13 a true-convolution layer learns the flipped kernels
    gaussian_blur      14 a conv layer learns Gaussian smoothing
    filter_complexity  15 are conv2's filters more complex than conv1's? (optimal inputs)
    sgd_identity       16 with plain SGD a filter's change is a weighted sum of image patches
    command            the registry of demos, the summary files and `kexp demo`

TensorFlow and matplotlib are imported only inside the demos that need them, so `kexp --help`
stays fast.
"""
