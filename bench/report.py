"""The Markdown table of a bench run, and the README's Performance table regenerated from it.
Reads only results.json's dictionary: no TensorFlow, so `--table-only` is instant."""

from __future__ import annotations

from pathlib import Path

from common import fmt, spread

README_BEGIN = "<!-- bench:begin -->"
README_END = "<!-- bench:end -->"
CHECKPOINT_LABELS = {
    "keras_file": "whole model `.keras`, temp file + rename (kexp's first checkpoint)",
    "npz": "npz of `training_state` (variables read one by one), written atomically with fsync, "
           "in the foreground",
    "npz_background": "the same npz from copies read one by one, written by a background thread "
                      "(kexp's previous checkpoint)",
    "npz_compiled_read_background": "every variable read in one compiled call, the npz written "
                                    "by kexp's background writer (kexp's `EpochCheckpoint` now)",
}


def percent(summary: dict, digits: int = 2) -> str:
    return f"{fmt(summary, digits, 100)} %"


def overhead_rows(results: dict) -> list[tuple[str, str]]:
    overhead, epoch = results["overhead"], results["settings"]["epoch_digits"]
    ratio, per_callback = overhead["kexp_vs_plain"], overhead["in_callback_breakdown_seconds"]
    parts = ", ".join(f"{name} {summary['median'] * 1000:.1f}"
                      for name, summary in per_callback.items())
    return [
        (f"1. kexp / plain `model.fit` of the same recipe on kexp's own input pipeline "
         f"({results['settings']['default_model']}), whole fit after the warm-up epoch, "
         "per repeat",
         f"**{fmt(ratio['per_repeat_whole_fit'], 3)}**; ratio of median epochs "
         f"{ratio['ratio_of_median_epochs']:.3f}" + _without_forces(overhead)),
        ("   time inside all of kexp's callbacks per epoch (snapshot + history + finiteness check "
         "+ checkpoint)",
         f"{fmt(overhead['in_callback_seconds_per_epoch'], 1, 1000)} ms = "
         f"**{percent(overhead['in_callback_share_of_epoch'])}** of a {epoch}-digit epoch "
         f"(goal <= 1 %); medians by callback, ms: {parts}"),
    ]


def _without_forces(overhead: dict) -> str:
    """Row 1's ratio with the forces' seconds taken out of kexp's epochs (absent from older
    results): the goal is about kexp's bookkeeping; the forces have their own row and budget."""
    without = overhead.get("kexp_without_forces_vs_plain")
    if not without:
        return "; goal <= 1.02"
    measured = overhead["measured_epochs"]
    return (f"; without the forces (computed at the end of {overhead['forces_epochs']} of the "
            f"{measured} measured epochs of this {measured + 1}-epoch fit, "
            f"{fmt(overhead['forces_seconds_per_moment'])} s each; after 4 of the default "
            f"run's 60): **{fmt(without, 3)}**; goal <= 1.02 without them (the forces: their "
            "own row, goal <= 5 %)")


def checkpoint_rows(results: dict) -> list[tuple[str, str]]:
    checkpoint, epoch = results["checkpoint"], results["settings"]["epoch_digits"]
    rows = []
    for name, label in CHECKPOINT_LABELS.items():
        option = checkpoint["options"][name]
        rows.append((f"2. checkpoint: {label}, foreground ms/epoch" if not rows else f"   {label}",
                     f"{fmt(option['seconds_per_epoch'], 1, 1000)} ms = "
                     f"{percent(option['share_of_epoch'])} of a {epoch}-digit epoch; "
                     f"{option['bytes'] / 1e6:.1f} MB"))
    background = checkpoint["background_write_seconds"]
    rows.append(("   cheapest in the foreground",
                 f"**{checkpoint['cheapest']}**"
                 + (f"; a background npz write itself takes {fmt(background, 1, 1000)} ms"
                    if background else "")))
    return rows


def throughput_rows(results: dict) -> list[tuple[str, str]]:
    rows = []
    for model_name, counted in results["flops"].items():
        rows.append((f"3. {model_name} throughput, training digits/s (kexp)",
                     f"{fmt(counted['samples_per_second'], 0)}; {counted['training'] / 1e6:.2f} "
                     f"MFLOP/digit -> {counted['gflops']:.1f} GFLOP/s = "
                     f"**{counted['utilisation'] * 100:.0f} %** of the matmul peak"))
    rows.append(("   float32 matmul peak (TensorFlow, 2048^2), GFLOP/s",
                 fmt(results["matmul_gflops"], 1)))
    torch = results["torch"]
    if "skipped" in torch:
        return rows + [("4. convnet: plain Keras fit / plain PyTorch loop, throughput",
                        torch["skipped"])]
    return rows + [("4. convnet: plain Keras fit (no augmentation) / plain PyTorch loop, "
                    "throughput",
                    f"**{fmt(torch['keras_vs_torch_throughput']['per_repeat_whole_fit'])}** "
                    f"per repeat; PyTorch {fmt(torch['torch_samples_per_second'], 0)} digits/s, "
                    f"{torch['threads']} threads")]


def startup_rows(results: dict) -> list[tuple[str, str]]:
    startup = results["startup_and_plotting"]
    return [
        ("5. `python -m kexp --help`, wall s",
         f"{fmt(startup['help_seconds'])}; heavy modules imported: "
         f"{', '.join(startup['help_imports']) or 'none'}; goal < 0.5 s"),
        ("   `python -m kexp train --init glorot_unifrom` (a typo, refused), wall s",
         f"{fmt(startup['typo_seconds'])}; goal < 1 s" if "typo_seconds" in startup
         else "not measured"),
        ("   `python -m kexp visualize RUN` (all figures, with start-up), wall s",
         fmt(startup["visualize_command_seconds"])),
        (f"   re-render all {startup['figures']} figures of a run in-process, s",
         f"{fmt(startup['render_run_seconds'])}; budget 1.5 s"),
        ("   optimal inputs of all filters, before and after training, s",
         f"{fmt(startup['optimal_inputs_seconds'])}; budget 2 s"
         if "optimal_inputs_seconds" in startup else "not measured"),
        ("   one conv1 before/after/difference grid, ms",
         fmt(startup["conv1_grid_seconds"], 0, 1000)),
    ]


def training_rows(results: dict) -> list[tuple[str, str]]:
    default, cost, full = (results["default_train"], results["deterministic_cost"],
                           results["full_mnist_train"])
    accuracies = {kind: ", ".join(f"{value:.4f}" for value in values)
                  for kind, values in cost["test_accuracy"].items()}
    return [
        ("6. default `python -m kexp train` (offline), wall s / test accuracy",
         f"{default['wall_seconds']:.1f} s / **{default['test_accuracy']:.4f}** "
         f"({default['epochs']} epochs, {default['train_samples']} training digits)"),
        ("   DATA=path (full MNIST)",
         "skipped: no full mnist.npz here" if "skipped" in full else
         f"{full['wall_seconds']:.1f} s / {full['test_accuracy']:.4f}"),
        *forces_rows(default),
        *run_page_rows(default),
        *quick_look_rows(results),
        ("   peak RSS of the default training, MB",
         f"{default['max_rss_mb']:.0f} (all trainings: {fmt(cost['max_rss_mb'], 0)})"),
        ("   `--deterministic` cost: median epoch vs default",
         f"{cost['ratio_of_median_epochs']:.3f}x; wall "
         f"{fmt(cost['wall_seconds']['deterministic'], 1)} s vs "
         f"{fmt(cost['wall_seconds']['default'], 1)} s; test accuracy "
         f"{accuracies['deterministic']} vs {accuracies['default']}"),
    ]


def run_page_rows(default: dict) -> list[tuple[str, str]]:
    """The run page of the default training (absent from older results)."""
    page = default.get("run_page")
    if not page:
        return []
    return [("   run page (index.html, pictures inline) of the default run: size / written in",
             f"**{page['bytes'] / 1e6:.2f} MB** / **{fmt(page['seconds'])} s** (budgets 5 MB, "
             "3 s)")]


def quick_look_rows(results: dict) -> list[tuple[str, str]]:
    """`make train EPOCHS=1`: the work after training against the training (absent from older
    results)."""
    quick = results.get("quick_look")
    if not quick:
        return []
    rounds = quick["rounds"]
    parts = {key: spread([round_["after_training"][key] for round_ in rounds])
             for key in rounds[0]["after_training"]}
    alone = {key: spread([round_["alone"][key] for round_ in rounds])
             for key in rounds[0].get("alone", {})}
    named = ", ".join(f"{key.removesuffix('_seconds').replace('_', ' ')} {fmt(summary)}"
                      for key, summary in parts.items())
    beside = "; ".join(f"{key.removesuffix('_seconds').replace('_', ' ')} {fmt(summary)}"
                       for key, summary in alone.items())
    return [("   `make train EPOCHS=1`: seconds after training / in training",
             f"**{fmt(quick['after_over_training'])}** (goal < 1); without the page: "
             f"{fmt(quick['views_over_training'])}; in training "
             f"{fmt(spread([round_['training_seconds'] for round_ in rounds]))} s (fit, test, "
             f"model saved); after it, s: {named}"
             + (f" (views: the optimal inputs on a thread beside the figures; each alone, "
                f"overlapping: {beside})" if beside else ""))]


def forces_rows(default: dict) -> list[tuple[str, str]]:
    """The cost of views/forces.npz in the default training (absent from older results)."""
    forces = default.get("forces")
    if not forces:
        return []
    return [(f"   forces (views/forces.npz: per-class gradients of conv1 and conv2 at "
             f"{forces['moments']} moments), share of the training epochs",
             f"**{forces['share'] * 100:.1f} %** ({forces['seconds']:.2f} s of "
             f"{forces['training_seconds']:.1f} s; goal <= 5 %)")]


def describe_recipe(recipe: dict) -> str:
    return (f"{recipe['model']}, {recipe['epochs']} epochs, "
            f"{'augmentation' if recipe['augment'] else 'no augmentation'}, "
            f"{recipe['schedule']} lr {recipe['learning_rate']:g}, "
            f"{recipe['validation_fraction']:.0%} validation")


def threshold_text(threshold: str, reached: dict) -> str:
    label = f"{float(threshold) * 100:.1f} %"
    if reached["seconds"] is None:
        return f"{label}: not reached"
    if reached["of"] == 1:
        return (f"{label}: **{reached['seconds']['median']:.1f} s** "
                f"(epoch {reached['epoch']:g})")
    return (f"{label}: **{fmt(reached['seconds'], 1)} s** (epoch {reached['epoch']:g}) in "
            f"{reached['reached_in']} of {reached['of']} seeds")


def accuracy_rows(results: dict) -> list[tuple[str, str]]:
    rows = []
    for name, summary in results["time_to_accuracy"]["summary"].items():
        reached = "; ".join(threshold_text(threshold, value)
                            for threshold, value in summary["thresholds"].items())
        final = summary["final_test_accuracy"]
        final_text = fmt(final, 1, 100) if final["n"] > 1 else f"{final['median'] * 100:.1f}"
        rows.append((f"{'7. ' if not rows else '   '}time to accuracy, {name} recipe "
                     f"({describe_recipe(summary['recipe'])}): training seconds until the "
                     f"{summary['test_digits']} held-out digits first reach",
                     f"{reached}; final {final_text} % after "
                     f"{summary['training_seconds']['median']:.0f} s (seed"
                     f"{'s' if len(summary['seeds']) > 1 else ''} "
                     f"{', '.join(map(str, summary['seeds']))})"))
    rows.append(("   held-out digits during training",
                 "read by the bench after every epoch only to time the recipes; kexp's "
                 "training never reads them before its final test"))
    return rows


def header(results: dict) -> str:
    machine, settings = results["machine"], results["settings"]
    return (f"Measured {machine['date']} on {machine['cpu']}, {machine['cores']} cores, a "
            f"machine shared with other work (load average {machine['load_average'][0]:.1f} at "
            f"start); TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, Python "
            f"{machine['python']}. Rows 1-4: {settings['repeats']} repeats, contenders "
            f"alternating; {settings['train_digits']} training + "
            f"{settings['validation_digits']} validation digits per epoch, batch "
            f"{settings['batch_size']}, {settings['measured_epochs_per_fit']} measured epochs per "
            f"fit after a warm-up epoch; median (min-max). The whole bench took "
            f"{results['bench_seconds'] / 60:.1f} min.")


# The rows of each section, by the results key that a section's measurement writes.
SECTION_ROWS = (("overhead", overhead_rows), ("checkpoint", checkpoint_rows),
                ("flops", throughput_rows), ("startup_and_plotting", startup_rows),
                ("default_train", training_rows), ("time_to_accuracy", accuracy_rows))


def table(results: dict) -> str:
    """The Markdown table printed at the end of a run and written into README.md."""
    rows = [row for key, section_rows in SECTION_ROWS if key in results
            for row in section_rows(results)]
    lines = [header(results), "", "| measure | result |", "| --- | --- |"]
    lines += [f"| {name.strip()} | {value} |" for name, value in rows]
    return "\n".join(lines)


def update_readme(readme: Path, table_text: str) -> None:
    """Replace what stands between the README's bench markers with `table_text`."""
    text = readme.read_text(encoding="utf-8")
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise SystemExit(f"{readme} has no '{README_BEGIN}' ... '{README_END}' markers around "
                         "its Performance table: add them where the table goes.")
    readme.write_text(text[:begin + len(README_BEGIN)] + "\n" + table_text + "\n"
                      + text[end:], encoding="utf-8")
