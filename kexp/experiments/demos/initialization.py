"""Claims about the start: 1. the initial filter numbers are random draws, centred at 0,
from exactly the initializer's distribution (Kolmogorov-Smirnov tests); 7. glorot_uniform's real
bounds against the question's formula."""

from __future__ import annotations

import math

import numpy as np

from kexp.experiments.demos.common import CONV1_SHAPE, DemoContext, import_keras, new_figure
from kexp.network import initializers

RANDOM_INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
                       "lecun_uniform", "lecun_normal", "random_uniform", "random_normal",
                       "truncated_normal", "variance_scaling")
KS_DRAWS = 32  # conv1 kernels drawn per initializer: 32 x 288 = 9,216 weights
KS_ALPHA = 0.001


def ks_statistic(values: np.ndarray, cdf) -> float:
    """Kolmogorov-Smirnov distance between the sample's empirical CDF and `cdf`."""
    x = np.sort(np.asarray(values, dtype=float).ravel())
    n = len(x)
    expected = cdf(x)
    return float(max((np.arange(1, n + 1) / n - expected).max(),
                     (expected - np.arange(n) / n).max()))


def ks_critical_value(count: int, alpha: float = KS_ALPHA) -> float:
    """The distance a correct distribution exceeds with probability `alpha` (asymptotic
    Kolmogorov bound sqrt(-ln(alpha/2)/2)/sqrt(n)); a wrong one exceeds it for large n."""
    return math.sqrt(-0.5 * math.log(alpha / 2)) / math.sqrt(count)


def same_std_other_family(theory: initializers.Theory) -> initializers.Theory:
    """The 'wrong distribution' a goodness-of-fit test must reject: the same mean and standard
    deviation, the other shape (uniform <-> truncated normal)."""
    if theory.kind == "uniform":
        return initializers.truncated_theory(
            theory.mean, theory.std / initializers.TRUNCATION_STD_FACTOR, "truncated normal")
    half = math.sqrt(3.0) * theory.std
    return initializers.uniform_theory(theory.mean - half, theory.mean + half, "uniform")


def draw_conv1_kernels(spec: str, draws: int, shape=CONV1_SHAPE) -> np.ndarray:
    """`draws` conv1 kernels from `spec` with seeds 0..draws-1, called as a Conv2D layer calls
    its kernel initializer: (draws, *shape)."""
    import_keras()
    from kexp.network import keras_initializers  # imports Keras: not at the demo registry's import

    return np.stack([np.asarray(keras_initializers.build_keras_initializer(spec, seed=seed)(shape))
                     for seed in range(draws)])


def initializer_fit(spec: str, draws: int = KS_DRAWS, shape=CONV1_SHAPE) -> dict:
    """Empirical mean, std and range of drawn kernels next to the theory, and KS distances to
    the exact distribution and to a wrong one with the same std."""
    values = draw_conv1_kernels(spec, draws, shape).ravel()
    theory = initializers.theory(spec, shape)
    wrong = same_std_other_family(theory)
    critical = ks_critical_value(values.size)
    ks = ks_statistic(values, theory.cdf)
    ks_wrong = ks_statistic(values, wrong.cdf)
    return {"initializer": spec, "weights": int(values.size), "theory": theory.description,
            "mean": float(values.mean()), "theory_mean": theory.mean,
            "std": float(values.std()), "theory_std": theory.std,
            "min": float(values.min()), "max": float(values.max()),
            "theory_low": theory.low, "theory_high": theory.high,
            "ks": ks, "ks_critical": critical, "fits": ks < critical,
            "wrong_family": wrong.kind, "ks_wrong": ks_wrong, "wrong_rejected": ks_wrong > critical,
            "values": values}


def orthogonality_error(spec: str = "orthogonal", shape=CONV1_SHAPE) -> float:
    """The orthogonal initializer has no per-entry law; its flattened 9x32 kernel has orthonormal
    rows (times gain). Returns max |W W^T - gain^2 I|."""
    kernel = draw_conv1_kernels(spec, 1, shape)[0]
    flat = kernel.reshape(-1, shape[-1])
    gain = initializers.parse_spec(spec).params["gain"]
    return float(np.abs(flat @ flat.T - gain**2 * np.eye(flat.shape[0])).max())


def demo_init_distribution(ctx: DemoContext) -> dict:
    """1. The initial filter numbers are random draws, centred at 0, from exactly the
    distribution the initializer states."""
    rows = [initializer_fit(spec) for spec in RANDOM_INITIALIZERS]
    figure = new_figure(15, 6.4)
    axes = figure.subplots(2, 5).ravel()
    for ax, row in zip(axes, rows):
        theory = initializers.theory(row["initializer"], CONV1_SHAPE)
        span = max(abs(row["min"]), abs(row["max"])) * 1.1
        ax.hist(row["values"], bins=40, range=(-span, span), density=True, color="#9ecae1",
                histtype="stepfilled", label="measured")
        xs = np.linspace(-span, span, 400)
        ax.plot(xs, theory.pdf(xs), color="black", lw=1.5, label="exact density")
        ax.plot(xs, same_std_other_family(theory).pdf(xs), color="tab:red", lw=1, ls="--",
                label="same std, other shape")
        verdict = "fits" if row["fits"] else "DOES NOT FIT"
        ax.set_title(f"{row['initializer']}\nKS {row['ks']:.4f} ({verdict}, crit "
                     f"{row['ks_critical']:.4f})\nwrong shape: KS {row['ks_wrong']:.4f}",
                     fontsize=9)
        ax.set_yticks([])
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, loc="lower center")
    figure.suptitle(f"1. Initial conv1 weights ({KS_DRAWS} draws of {CONV1_SHAPE} per "
                    f"initializer) against each initializer's exact distribution; "
                    f"Kolmogorov-Smirnov at alpha={KS_ALPHA}", fontsize=11)
    ctx.save(figure, "01_init_distribution")
    table = [{key: value for key, value in row.items() if key != "values"} for row in rows]
    fitted = sum(row["fits"] for row in rows)
    rejected = sum(row["wrong_rejected"] for row in rows)
    error = orthogonality_error()
    return {"initializers": table, "orthogonal_max_error": error,
            "summary": f"{fitted}/{len(rows)} random initializers fit their exact distribution "
                       f"(KS < {rows[0]['ks_critical']:.4f}); the same-std wrong shape is "
                       f"rejected for {rejected}/{len(rows)}; every mean is within "
                       f"{max(abs(r['mean']) for r in rows):.4f} of 0; orthogonal: "
                       f"max |W W^T - I| = {error:.1e}"}


def glorot_bounds_numbers(kernel: np.ndarray) -> dict:
    """The correct glorot_uniform limit and the question's formula, against a measured kernel."""
    fan_in, fan_out = initializers.compute_fans(kernel.shape)
    limit = initializers.theory("glorot_uniform", kernel.shape).high
    wrong_high, _ = initializers.question_formula_bounds(kernel.shape)
    magnitudes = np.abs(kernel)
    return {"fan_in": fan_in, "fan_out": fan_out, "limit": limit,
            "question_formula_bound": wrong_high,
            "max_abs_weight": float(magnitudes.max()),
            "fraction_outside_limit": float((magnitudes > limit).mean()),
            "fraction_outside_question_bounds": float((magnitudes > wrong_high).mean())}


def demo_glorot_bounds(ctx: DemoContext) -> dict:
    """7. glorot_uniform's real bounds are +-sqrt(6/(fan_in+fan_out)), not +-6/(fan_in+fan_out)."""
    kernel = ctx.run("glorot_uniform")["before"]["conv1"]
    result = glorot_bounds_numbers(kernel)
    result["summary"] = (f"fan_in={result['fan_in']}, fan_out={result['fan_out']}: limit "
                         f"{result['limit']:.4f} vs the question's "
                         f"{result['question_formula_bound']:.4f};"
                         f" max |w| {result['max_abs_weight']:.4f}; "
                         f"{100 * result['fraction_outside_question_bounds']:.1f}% of weights lie "
                         f"outside the question's bounds, "
                         f"{100 * result['fraction_outside_limit']:g}% outside the correct ones")
    figure = new_figure(9, 4)
    ax = figure.subplots()
    counts, _, _ = ax.hist(kernel.ravel(), bins=40, color="tab:blue", alpha=0.7,
                           label=f"conv1 before training ({kernel.size} weights)")
    ax.set_ylim(0, 1.5 * counts.max())
    for sign in (-1, 1):
        ax.axvline(sign * result["limit"], color="black", lw=2,
                   label=f"+-sqrt(6/(9+288)) = +-{result['limit']:.4f}" if sign > 0 else None)
        ax.axvline(sign * result["question_formula_bound"], color="tab:red", ls="--", lw=2,
                   label=f"question: +-6/(9+288) = +-{result['question_formula_bound']:.4f}"
                   if sign > 0 else None)
    ax.set_xlabel("weight value")
    ax.set_ylabel("count")
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    ax.set_title(f"7. glorot_uniform: all weights inside +-{result['limit']:.4f}; "
                 f"{100 * result['fraction_outside_question_bounds']:.0f}% outside the question's "
                 f"+-{result['question_formula_bound']:.4f}", fontsize=10)
    ctx.save(figure, "07_glorot_bounds")
    return result
