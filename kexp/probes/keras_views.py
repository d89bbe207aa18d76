"""What each filter of a Keras model responds to: feature maps, strongest patches and optimal
inputs, for kexp's models and for anybody's model with Conv2D layers.

Keras has no forward hooks, and the output of a Conv2D inside a nested block cannot be asked
for from the outer model's graph, so the conv layers' outputs are recorded while the model runs
(`recording_conv_outputs`). The optimal input of a filter is found by gradient ascent on the
image, which needs TensorFlow: training computes it once at its end and writes it into the run
folder (views/optimal_inputs.npz), where plots read it without TensorFlow. Run folders given
to `feature_maps` and `top_patches` are read with numpy alone (kexp.probes.filter_views).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kexp.config import IMAGE_SHAPE
from kexp.errors import KexpError
from kexp.network import conv_layers
from kexp.probes import filter_views
from kexp.storage import atomic, runs
from kexp.validation import check_whole

OPTIMAL_STEPS = 64  # ascent steps: 91-98% of the mean activation 256 steps reach, at a quarter
FIRST_STEP, LAST_STEP = 0.3, 0.02  # step length as a fraction of the image's norm, decayed
SOFTNESS = 0.05  # see _soft_relu
INPUT_RMS = 0.3  # root-mean-square pixel of an optimal input: about an MNIST digit's (0.33)
WHEN = ("before", "after")  # the two states of a run the views compare


class ViewError(KexpError):
    """Images, layers or a model the filter views cannot work with."""


class AscentStopped(KexpError):
    """The optimal inputs' ascent was asked to stop (its caller is ending); nothing written."""


def as_images(images, side: int | None = None) -> np.ndarray:
    """float32 (n, h, w, channels) from (n, h, w) or (n, h, w, channels) images; uint8 images
    are scaled to [0, 1] as kexp trains on them."""
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or not len(array) or (side is not None and array.shape[1] != side):
        raise ViewError(f"Invalid value for `images`: shape {np.shape(images)}. Expected "
                        "(n, height, width) or (n, height, width, channels) with n >= 1"
                        + (f" and height {side}" if side else "") + ".")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    return array.astype(np.float32)


def _chosen_layers(model: keras.Model, layers) -> dict[str, keras.layers.Conv2D]:
    found = conv_layers.conv_layers(model)
    if not found:
        raise ViewError(f"Invalid value for `model`: {model.name!r} has no Conv2D layer. "
                        "Expected a model with at least one.")
    unknown = [name for name in (layers or ()) if name not in found]
    if unknown:
        raise ViewError(f"Invalid value for `layers`: {unknown}. Expected Conv2D layer paths "
                        f"of this model: {', '.join(found)}.")
    return {name: found[name] for name in (layers or found)}


@contextlib.contextmanager
def recording_conv_outputs(layers: dict[str, keras.layers.Conv2D]):
    """While open, every call of the given layers stores its output before and after its
    activation in the two dicts it yields (by layer path); each layer's activation is wrapped
    for that and restored on exit."""
    before_activation: dict = {}
    after_activation: dict = {}

    def recorder(path, activation):
        def recording_activation(outputs):
            before_activation[path] = outputs
            after_activation[path] = activation(outputs)
            return after_activation[path]
        return recording_activation

    originals = {path: layer.activation for path, layer in layers.items()}
    for path, layer in layers.items():
        layer.activation = recorder(path, originals[path])
    try:
        yield before_activation, after_activation
    finally:
        for path, layer in layers.items():
            layer.activation = originals[path]


def _model_maps(model: keras.Model, images: np.ndarray, layers=None) -> dict[str, np.ndarray]:
    chosen = _chosen_layers(model, layers)
    with recording_conv_outputs(chosen) as (_, outputs):
        model(images, training=False)
    return {path: keras.ops.convert_to_numpy(outputs[path]) for path in chosen}


def _run_snapshot(run_dir, snapshot: str):
    """The model's name and the kernels and biases of snapshot `snapshot` of a run folder."""
    try:
        path = runs.snapshot_path(Path(run_dir), snapshot, "snapshot")
    except runs.RunError as error:  # a bad argument of these functions, named as theirs
        raise ViewError(str(error)) from None
    return (runs.read_config(run_dir).model, *runs.read_snapshot(path))


def feature_maps(model_or_run, images, layers=None, snapshot: str = runs.FINAL
                 ) -> dict[str, np.ndarray]:
    """Every Conv2D layer's output (activation applied) for `images`, by layer path, as numpy
    (n, h, w, filters). `model_or_run`: a Keras model, or a kexp run folder (read with numpy
    from its `snapshot`, e.g. "initial")."""
    if isinstance(model_or_run, (str, os.PathLike)):
        model_name, kernels, biases = _run_snapshot(model_or_run, snapshot)
        maps = filter_views.snapshot_feature_maps(model_name, kernels, biases,
                                                  as_images(images, IMAGE_SHAPE[0]))
        return {name: maps[name] for name in (layers or maps)}
    return _model_maps(model_or_run, as_images(images), layers)


def keras_stages(model: keras.Model) -> list[filter_views.Stage]:
    """The geometry of `model`'s layers in the order `.layers` lists them (nested blocks
    included), up to its last Conv2D: right for a chain of layers (a Sequential, or a functional
    model without branches). Layers other than Conv2D and 2-D pooling must keep the size."""
    stages: list[filter_views.Stage] = []
    resizing = (keras.layers.Cropping2D, keras.layers.ZeroPadding2D, keras.layers.UpSampling2D,
                keras.layers.Conv2DTranspose, keras.layers.DepthwiseConv2D,
                keras.layers.SeparableConv2D, keras.layers.Resizing)

    def visit(layers, prefix: str) -> None:
        for layer in layers:
            path = f"{prefix}{layer.name}"
            if isinstance(layer, keras.layers.Conv2D):
                size, stride, dilation = layer.kernel_size, layer.strides, layer.dilation_rate
                kind, padding = "conv", layer.padding
            elif isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
                size, stride, dilation = layer.pool_size, layer.strides, (1, 1)
                kind, padding = "pool", layer.padding
            elif isinstance(getattr(layer, "layers", None), (list, tuple)):
                visit(layer.layers, f"{path}/")
                continue
            elif isinstance(layer, resizing):
                raise ViewError(f"Invalid value for `model`: layer {path!r} "
                                f"({type(layer).__name__}) changes the image geometry in a way "
                                "top_patches does not follow. Expected Conv2D, 2-D pooling and "
                                "layers that keep the size.")
            else:
                continue
            if size[0] != size[1] or stride[0] != stride[1] or tuple(dilation) != (1, 1):
                raise ViewError(f"Invalid value for `model`: layer {path!r} has size {size}, "
                                f"strides {stride}, dilation {dilation}. Expected square "
                                "windows and strides without dilation.")
            stages.append(filter_views.Stage(kind, path, size[0], stride[0], padding))

    visit(model.layers, "")
    last_conv = max(index for index, stage in enumerate(stages) if stage.kind == "conv")
    return stages[:last_conv + 1]


def top_patches(model_or_run, images, k: int = filter_views.TOP_K, layers=None,
                snapshot: str = runs.FINAL) -> dict[str, filter_views.TopPatches]:
    """For every Conv2D layer (by layer path), the `k` patches of `images` (one per image at
    most) that excite each of its filters most, cut at the layer's receptive field."""
    check_whole("k", k, 1, error=ViewError)
    images = as_images(images)
    maps = feature_maps(model_or_run, images, layers, snapshot)
    if isinstance(model_or_run, (str, os.PathLike)):
        model_name, kernels, _ = _run_snapshot(model_or_run, snapshot)
        stages = filter_views.run_stages(model_name, kernels)
    else:
        stages = keras_stages(model_or_run)
    fields = filter_views.receptive_fields(stages, images.shape[1])
    return {name: filter_views.strongest_patches(images, maps[name], fields[name], k)
            for name in maps}


def _input_shape(model: keras.Model) -> tuple[int, ...]:
    try:
        shape = tuple(model.inputs[0].shape[1:])
    except (AttributeError, IndexError, TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or None in shape:
        raise ViewError(f"Invalid value for `model`: {model.name!r} has no fixed input shape "
                        "(height, width, channels). Expected a model built on keras.Input.")
    return shape


def _soft_relu(pre_activation):
    """softplus at a temperature of SOFTNESS times the maps' spread: ReLU within a few percent
    where a filter is active, but never flat."""
    temperature = SOFTNESS * tf.stop_gradient(tf.math.reduce_std(pre_activation)) + 1e-6
    return temperature * tf.math.softplus(pre_activation / temperature)


def _own_filter_maps(inputs, layer: keras.layers.Conv2D):
    """`layer` applied to image i with its filter i alone, for n images and n filters: the
    (n, h, w, 1) maps, bias and activation included. One depthwise convolution of the images
    side by side does 1/n of a full convolution's work, and the maps are 1/n of its output."""
    count, height, width, channels = inputs.shape
    kernel = layer.kernel
    side_by_side = tf.reshape(tf.transpose(inputs, (1, 2, 0, 3)), (1, height, width, -1))
    kernels = tf.reshape(tf.transpose(kernel, (0, 1, 3, 2)), (*kernel.shape[:2], -1, 1))
    stride, dilation = layer.strides[0], layer.dilation_rate[0]
    maps = tf.nn.depthwise_conv2d(side_by_side, kernels, (1, stride, stride, 1),
                                  layer.padding.upper(), dilations=(dilation, dilation))
    own = tf.reduce_sum(tf.reshape(maps, (*maps.shape[1:3], count, channels)), -1)
    outputs = tf.transpose(own, (2, 0, 1))[..., None]
    if layer.use_bias:
        outputs = outputs + tf.reshape(layer.bias, (-1, 1, 1, 1))
    return layer.activation(outputs) if layer.activation is not None else outputs


@contextlib.contextmanager
def own_filters_only(layer: keras.layers.Conv2D, last: bool):
    """While open, `layer` gives image i's map of its filter i alone (_own_filter_maps), where
    it is the `last` layer run (nothing after it needs all its channels) and a plain Conv2D
    (Keras' own call and convolution, one group, channels last, square strides and dilation);
    any other layer stays as it is and gives every filter's map."""
    plain = (last and type(layer).call is keras.layers.Conv2D.call
             and type(layer).convolution_op is keras.layers.Conv2D.convolution_op
             and layer.groups == 1 and layer.data_format == "channels_last"
             and len(set(layer.strides)) == len(set(layer.dilation_rate)) == 1)
    if plain:
        layer.call = lambda inputs: _own_filter_maps(inputs, layer)
    try:
        yield
    finally:
        if plain:
            del layer.call


def _runner(model: keras.Model, path: str, layer: keras.layers.Conv2D):
    """What to call to get `layer`'s output, and whether `layer` is the last layer it runs: the
    model cut at that layer where Keras can cut it (a layer of the model itself: the layers
    after it are not computed), else the model."""
    if "/" not in path:
        try:
            return keras.Model(model.inputs, layer.output), True
        except (AttributeError, ValueError, TypeError):  # a subclassed model, a shared layer
            pass
    return model, False


def optimal_inputs(model: keras.Model, layers=None, steps: int = OPTIMAL_STEPS, seed: int = 0,
                   rms: float = INPUT_RMS, nonnegative: bool = False
                   ) -> dict[str, dict[str, np.ndarray]]:
    """For every filter of the chosen Conv2D layers, the input image that maximises the
    filter's mean activation over its map, among images of root-mean-square pixel `rms` (a
    digit's brightness): gradient ascent with normalised steps, projected back onto that norm
    after each step (and onto pixels >= 0 with `nonnegative`, for inputs that are ink on
    paper, as MNIST digits are), from seeded noise. Returns {layer path: {"images": (filters,
    h, w, c), "activation": (filters,) the mean activation reached}}. The same seed gives the
    same start for every model of one architecture, so two states of a run compare."""
    return next(_optimal_inputs_per_state(model, [lambda: None], layers, steps, seed, rms,
                                          nonnegative))


def _optimal_inputs_per_state(model: keras.Model, set_states, layers=None,
                              steps: int = OPTIMAL_STEPS, seed: int = 0, rms: float = INPUT_RMS,
                              nonnegative: bool = False, stop: threading.Event | None = None):
    """optimal_inputs for each state of `model` that a call of `set_states` gives it (new
    weights in its variables), in one batched ascent over all filters of every chosen layer,
    traced once for all states. `stop`, once set, ends the ascent at its next step with
    AscentStopped."""
    check_whole("steps", steps, 1, error=ViewError)
    chosen = _chosen_layers(model, layers)
    shape = _input_shape(model)
    count = sum(layer.filters for layer in chosen.values())
    norm = rms * float(np.sqrt(np.prod(shape)))
    noise = np.random.default_rng(seed).normal(size=(count, *shape))
    noise = np.abs(noise) if nonnegative else noise
    start = tf.constant(noise * norm / np.linalg.norm(noise.reshape(count, -1), axis=1)
                        [:, None, None, None], tf.float32)
    bounds = np.cumsum([0] + [layer.filters for layer in chosen.values()])
    runners = {path: _runner(model, path, layer) for path, layer in chosen.items()}
    smooth = {path: layer.activation is keras.activations.relu for path, layer in chosen.items()}

    def unit(tensor):
        return tensor / (tf.norm(tf.reshape(tensor, (count, -1)), axis=1)[:, None, None, None]
                         + 1e-12)

    def own_maps(maps):  # each image's map of its own filter, (n, h, w), from (n, h, w, 1)
        if maps.shape[-1] == 1:  # or from every filter's maps (n, h, w, n)
            return maps[..., 0]
        return tf.transpose(tf.linalg.diag_part(tf.transpose(maps, (1, 2, 0, 3))), (2, 0, 1))

    with recording_conv_outputs(chosen) as (before_activation, outputs):
        # One compiled step, called per step. Tried and slower on the 2-core CPU: the 64 steps
        # in one tf.while_loop (about 10% more CPU, and images off by up to 0.2 after the
        # ascent) and jit_compile=True (5-6x the CPU). autograph=False: plain Python traces
        # faster.
        @functools.partial(tf.function, autograph=False)
        def ascend(images, step_length):
            with tf.GradientTape() as tape:
                tape.watch(images)
                reached, surrogate = [], []
                for index, (path, layer) in enumerate(chosen.items()):  # all filters at once
                    runner, last = runners[path]
                    with own_filters_only(layer, last):
                        runner(images[bounds[index]:bounds[index + 1]], training=False)
                    reached.append(tf.reduce_mean(own_maps(outputs[path]), axis=(1, 2)))
                    # ReLU's stand-in: softplus gives a filter that nothing in the start image
                    # activates a direction (to its least negative spots) where ReLU gives 0.
                    chased = (_soft_relu(own_maps(before_activation[path])) if smooth[path]
                              else own_maps(outputs[path]))
                    surrogate.append(tf.reduce_mean(chased, axis=(1, 2)))
                total = tf.reduce_sum(tf.concat(surrogate, 0))  # an image's: its filter's
            gradient = tape.gradient(total, images)
            stepped = images + step_length * norm * unit(gradient)
            return (unit(tf.nn.relu(stepped) if nonnegative else stepped) * norm,
                    tf.concat(reached, 0))

        for set_state in set_states:
            set_state()
            images = start
            for step in range(steps):
                if stop is not None and stop.is_set():
                    raise AscentStopped("the optimal inputs were stopped before they were found")
                length = FIRST_STEP * (LAST_STEP / FIRST_STEP) ** (step / max(steps - 1, 1))
                images, _ = ascend(images, tf.constant(length, tf.float32))
            _, reached = ascend(images, tf.constant(0.0, tf.float32))
            images, reached = images.numpy(), reached.numpy()
            yield {path: {"images": images[low:high], "activation": reached[low:high]}
                   for path, low, high in zip(chosen, bounds[:-1], bounds[1:])}


def assign_snapshot(model: keras.Model, kernels: dict[str, np.ndarray],
                    biases: dict[str, np.ndarray]) -> None:
    """Put a snapshot's kernels and biases (missing biases: zero, as kexp's models start) into
    `model`'s Conv2D layers."""
    for path, layer in conv_layers.conv_layers(model).items():
        layer.kernel.assign(kernels[path])
        if layer.use_bias:
            layer.bias.assign(biases.get(path, np.zeros(layer.filters, np.float32)))


def with_snapshot(model: keras.Model, kernels: dict[str, np.ndarray],
                  biases: dict[str, np.ndarray]) -> keras.Model:
    """A copy of `model` whose Conv2D layers hold a snapshot's kernels and biases: the model's
    conv layers as they were then."""
    copy = keras.models.clone_model(model)
    assign_snapshot(copy, kernels, biases)
    return copy


def write_optimal_inputs(run_dir: Path, model: keras.Model, seed: int = 0,
                         stop: threading.Event | None = None) -> Path:
    """Compute the optimal inputs of every conv filter of a run before training (the initial
    snapshot) and after (its last snapshot) and write them to views/optimal_inputs.npz, with
    the mean activation each reached. `model`: the run's model (the conv weights are replaced).
    kexp's digits are ink on blank paper (pixels >= 0), so the optimal inputs are too. `stop`
    (set from another thread) ends it at the next ascent step with AscentStopped, writing
    nothing."""
    run_dir = Path(run_dir)
    snapshots = dict(zip(WHEN, runs.first_and_last_snapshots(run_dir)))
    biases = {when: runs.load_biases(path) for when, (_, path) in snapshots.items()}
    if not biases["after"]:  # the start's are zero; the trained ones are not
        raise ViewError(f"Cannot compute the optimal inputs of '{run_dir}': its snapshot "
                        f"'{snapshots['after'][0]}' has no biases (kexp kept only kernels "
                        "then). Expected a run trained by this kexp: train it again.")
    # The model itself takes each state (no copy: cloning cost a tenth of the ascent) and gets
    # its own kernels and biases back at the end.
    layers = conv_layers.conv_layers(model)
    own_kernels = {path: keras.ops.convert_to_numpy(layer.kernel) for path, layer in layers.items()}
    own_biases = {path: keras.ops.convert_to_numpy(layer.bias) for path, layer in layers.items()
                  if layer.use_bias}
    setters = [functools.partial(assign_snapshot, model, runs.load_kernels(path), biases[when])
               for when, (_, path) in snapshots.items()]
    arrays = {}
    try:
        for when, found_by_layer in zip(WHEN, _optimal_inputs_per_state(
                model, setters, seed=seed, nonnegative=True, stop=stop)):
            for layer, found in found_by_layer.items():
                for kind, array in found.items():
                    arrays[filter_views.optimal_input_key(kind, when, layer)] = array
    finally:
        assign_snapshot(model, own_kernels, own_biases)
    folder = run_dir / runs.VIEWS_DIR
    folder.mkdir(exist_ok=True)
    return atomic.write_npz_atomic(folder / runs.OPTIMAL_INPUTS_FILE, arrays)
