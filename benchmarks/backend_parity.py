"""TensorFlow against JAX: the same SAGAN train steps from the same weights, batches and noise; prints one JSON line.

Usage:
  python benchmarks/backend_parity.py --preset=synthetic32 --steps=3
  python benchmarks/backend_parity.py --preset=dcgan64 --steps=3 --batch_size=8 --small_data

Keras has one backend per process, so each backend runs in a subprocess of its own (KERAS_BACKEND set), and the
two exchange .npz files in a temporary directory:

  1. TensorFlow builds the model (`build_sagan`, weights from `keras.utils.set_random_seed(--seed)`), writes its
     whole state (`state_groups`) and the inputs of every step, drawn with NumPy: real images and labels, and the
     noise the step would draw (latents, fake labels, augmentation parameters). The noise is fed to the step with
     the batch (`sagan_tf.models.step_common.FedDraws`), since the backends' random generators differ. It then runs
     `--steps` train steps (`train_on_batch`) and writes the state after them.
  2. JAX (with TensorFlow made unimportable in its process) builds the same model, loads that initial state, runs
     the same steps on the same inputs and writes its state.
  3. This process compares, per variable group, each backend's update (state after the steps minus the initial
     state) and prints the figures; it exits with status 1 when one group is past the tolerance (below).

Groups: G and D (the trained weights), EMA (the EMA generator's weights), batch_norm (moving statistics of G and
D), u (spectral-norm vectors of G and D), optimizer (both Adam optimizers' slots, iterations and learning rates),
small_data (ADA's and LeCam's state, with --small_data).

--small_data turns on ADA (its p started at 0.5 and adjusted every step, so that the DiffAugment ops gate and p
moves), LeCam (weight 0.1), orthogonal regularization (1e-4) and, for conditional presets, fake labels drawn from
class frequencies. Float32 only.

Adam's epsilon is 1e-3 here (the presets' 1e-7 otherwise): Adam's first updates are nearly sign(gradient) * lr
whatever the gradient's size, so with a tiny epsilon a gradient that is zero up to rounding (e.g. the bias of a
convolution followed by batch norm, which removes any per-channel constant) moves its weight by +-lr with the
rounding's sign, and these lr-sized differences grow from step to step (synthetic32 at batch 8: 0.03% of G's
kernel elements 2 * lr apart after one step, gradients 1% apart after three). With epsilon 1e-3 an update of a
gradient far below it stays proportional to the gradient, so the comparison measures the train steps.

The verdict compares what the steps did, not where they ended: each backend's update of a group (its state after
the steps minus the initial state) against TensorFlow's, as `update_error`, the L2 norm of the updates' difference
over the L2 norm of TensorFlow's update (all the group's float elements together). A group passes when its
update_error is at most `--tolerance` (default 1e-2) and its integer state (the optimizers' iterations) is equal. A
generator update that JAX skipped or halved gives 1 or 0.5 in G; against the weights themselves such an error is
invisible, since a few Adam steps move a weight by a few learning rates (2e-4 each for synthetic32's G), far below
the weights' size. The backends' kernels (oneDNN under TensorFlow, XLA under JAX) round float32 differently in the
last bits (about 1e-6 of a convolution's outputs), and a pre-activation within rounding of a ReLU's kink switches
part of the gradient on or off, so the runs drift apart slowly, in a few elements: measured on the tiny model of
tests/models/test_jax_step.py (two steps, every small-data option), update_error 9e-6 in G and below 2e-6 elsewhere;
synthetic32 at batch 4 with --small_data --steps=2, 6.8e-4 in G, 3e-4 in the optimizer and 2e-4 in D.
The line also gives, per group, the largest absolute difference of the states (`max_abs_diff`), the largest value
(`max_abs_value`) and `fraction_over_1e-5`, the share of elements whose states differ by more than 1e-5: a real
difference (a wrong loss, update order or statistic) moves most weights of its group, so that share is near 100%
for such an error and below 1% of the weights in the runs above.
"""

import argparse
import json
import re
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUPS = ("G", "D", "EMA", "batch_norm", "u", "optimizer", "small_data")
ADAM_EPSILON = 1e-3
DEFAULT_TOLERANCE = 1e-2
SMALL_DATA = dict(augment="ada", ada_interval=1, ada_kimg=0.1, lecam_weight=0.1, orthogonal_reg=1e-4)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default=None, help="a preset name (sagan_tf.config.presets)")
    parser.add_argument("--steps", type=int, default=3, help="train steps on each backend")
    parser.add_argument("--batch_size", type=int, default=None, help="batch per update (default: the preset's)")
    parser.add_argument("--small_data", action="store_true", help="ADA, LeCam, orthogonal reg., data fake labels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="largest update_error allowed in a group: the norm of the updates' difference over "
                             "the norm of TensorFlow's update")
    parser.add_argument("--config_json", default=None, help=argparse.SUPPRESS)  # an ExperimentConfig (tests)
    parser.add_argument("--side", choices=("tensorflow", "jax"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if (args.preset is None) == (args.config_json is None):
        parser.error("Pass --preset (a preset name).")
    if args.steps < 1:
        parser.error(f"--steps must be >= 1. Received: --steps={args.steps}")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch_size must be >= 1. Received: --batch_size={args.batch_size}")
    return args


def experiment_config(args):
    """The preset's config (or --config_json's) with this run's batch size and options (raises ConfigError for an
    unknown preset)."""
    from sagan_tf.config import presets
    from sagan_tf.config import ExperimentConfig

    if args.config_json:
        with open(args.config_json) as f:
            config = ExperimentConfig.from_dict(json.load(f))
    else:
        config = presets.get_preset(args.preset)
    changes = {"batch_size": args.batch_size or config.training.batch_size}
    if args.small_data:
        changes.update(SMALL_DATA)
        if config.model.conditional:
            changes["fake_labels"] = "data"
    return config.replace(**changes)


def within_tolerance(figures, tolerance=DEFAULT_TOLERANCE):
    """Whether every group's update_error (`compare`) is at most `tolerance`."""
    return all(group_figures["update_error"] <= tolerance for group_figures in figures.values())


def class_frequencies(config):
    """Uneven class counts 1, 2, ... for fake labels drawn from the data's frequencies."""
    return tuple(range(1, config.model.num_classes + 1))


def state_groups(model):
    """{group: [variables]} in a fixed order, the same on both backends (see the module docstring)."""
    def split(network):
        weights = network.non_trainable_variables
        return ([v for v in weights if "moving_" in v.path], [v for v in weights if v.path.endswith("/u")])

    g_statistics, g_u = split(model.generator)
    d_statistics, d_u = split(model.discriminator)
    groups = {
        "G": list(model.generator.trainable_variables),
        "D": list(model.discriminator.trainable_variables),
        "EMA": list(model.ema_generator.weights) if model.ema_generator is not None else [],
        "batch_norm": g_statistics + d_statistics,
        "u": g_u + d_u,
        "optimizer": list(model.g_optimizer.variables) + list(model.d_optimizer.variables),
        "small_data": [v for state in model.regularization_state().values() for v in state.values()],
    }
    return {name: variables for name, variables in groups.items() if variables}


def save_state(model, path):
    import numpy as np

    arrays = {f"{group}/{i:04d}": np.asarray(v.numpy()) for group, variables in state_groups(model).items()
              for i, v in enumerate(variables)}
    paths = {group: [v.path for v in variables] for group, variables in state_groups(model).items()}
    np.savez(path, __paths__=np.array(json.dumps(paths)), **arrays)


def _without_instance_numbers(paths):
    """`paths` without the numbers Keras appends to a name already taken in its process ("generator_1/block1/..."
    and the optimizer's "adam_3/generator_1_block1_..." are "generator/block1/..." and "adam/generator_block1_..." in
    a process that built one model): the two processes need not have built the same objects before."""
    return [re.sub(r"_\d+(?=[/_]|$)", "", path) for path in paths or ()]


def load_state(model, path):
    import numpy as np

    stored = np.load(path)
    paths = json.loads(str(stored["__paths__"]))
    for group, variables in state_groups(model).items():
        if _without_instance_numbers([v.path for v in variables]) != _without_instance_numbers(paths.get(group)):
            raise ValueError(f"The {group} variables differ between the backends. Received: {paths.get(group)} "
                             f"against {[v.path for v in variables]}")
        for i, variable in enumerate(variables):
            variable.assign(stored[f"{group}/{i:04d}"].astype(variable.dtype))


def draw_inputs(model, config, steps, seed):
    """{name: array with a leading `steps` axis}: each step's batch dict (`FedDraws`), drawn with NumPy."""
    import numpy as np

    from sagan_tf.models import augment

    rng = np.random.default_rng(seed)
    d_steps, batch, size = config.training.d_steps, config.training.batch_size, config.model.image_size
    inputs = {"images": rng.uniform(-1, 1, (steps, d_steps * batch, size, size, 3)).astype("float32"),
              "z": rng.standard_normal((steps, d_steps + 1, batch, config.model.latent_dim)).astype("float32")}
    if config.model.conditional:
        inputs["labels"] = rng.integers(0, config.model.num_classes, (steps, d_steps * batch)).astype("int32")
        probabilities = model.fake_label_probabilities
        if probabilities is None:
            inputs["fake_labels"] = rng.integers(0, config.model.num_classes, (steps, d_steps + 1, batch))
        else:
            p = np.asarray(probabilities) / sum(probabilities)
            inputs["fake_labels"] = rng.choice(config.model.num_classes, (steps, d_steps + 1, batch), p=p)
        inputs["fake_labels"] = inputs["fake_labels"].astype("int32")
    if model.augment != "none":
        draws = (steps, 2 * d_steps + 1, batch)
        policy = model.augment_policy
        if "color" in policy:
            inputs["augment_color"] = rng.uniform(0, 1, draws + (3,)).astype("float32")
        if "translation" in policy:
            limit = augment.translation_limit(size)
            inputs["augment_translation"] = rng.integers(-limit, limit + 1, draws + (2,)).astype("int32")
        if "cutout" in policy:
            high = size + 1 - augment.cutout_size(size) % 2
            inputs["augment_cutout"] = rng.integers(0, high, draws + (2,)).astype("int32")
        if model.ada is not None:
            inputs["augment_gate_draws"] = rng.uniform(0, 1, draws + (len(augment.gated_ops(policy)),)).astype(
                "float32")
    return inputs


def train(config, side, workdir, steps, seed):
    """One backend's part (the backend of this process): train `steps` steps and write the state after them to
    `<workdir>/<side>.npz`; TensorFlow first writes the initial state and the inputs, JAX reads them.

    Returns:
      The seconds the steps took (the first one's tracing and compilation included).
    """
    import keras
    import numpy as np

    from sagan_tf.models import build_sagan

    keras.utils.set_random_seed(seed)
    model = build_sagan(config, seed=seed, class_frequencies=class_frequencies(config))
    training = config.training
    model.compile(*(keras.optimizers.Adam(lr, beta_1=training.beta1, beta_2=training.beta2, epsilon=ADAM_EPSILON)
                    for lr in (training.g_lr, training.d_lr)), loss=training.loss)
    initial = os.path.join(workdir, "initial.npz")
    inputs_path = os.path.join(workdir, "inputs.npz")
    if side == "tensorflow":
        if model.ada is not None:
            model.ada.p.assign(0.5)
        save_state(model, initial)
        np.savez(inputs_path, **draw_inputs(model, config, steps, seed))
    else:
        load_state(model, initial)
    inputs = dict(np.load(inputs_path))
    start = time.perf_counter()
    for step in range(steps):
        model.train_on_batch({name: values[step] for name, values in inputs.items()})
    seconds = time.perf_counter() - start
    save_state(model, os.path.join(workdir, f"{side}.npz"))
    return seconds


def compare(workdir):
    """{group: figures} between the backends' states in `workdir` (the module docstring), in `GROUPS` order.

    Returns:
      Per group: update_error (the L2 norm of JAX's update minus TensorFlow's over the norm of TensorFlow's update,
      updates taken from initial.npz; 0 where neither moved, inf where integer state differs or only JAX moved),
      max_abs_diff and max_abs_value (of the states after the steps; integer state: 0 or inf) and
      fraction_over_1e-5 (the share of elements whose states differ by more than 1e-5).
    """
    import numpy as np

    initial, tf_state, jax_state = (np.load(os.path.join(workdir, f"{name}.npz"))
                                    for name in ("initial", "tensorflow", "jax"))
    sums = {}  # group: [squared update difference, squared TF update, max diff, max value, over 1e-5, elements]
    for key in tf_state.files:
        if key == "__paths__":
            continue
        sum_ = sums.setdefault(key.split("/")[0], [0.0, 0.0, 0.0, 0.0, 0, 0])
        before, a, b = (state[key].astype("float64") for state in (initial, tf_state, jax_state))
        difference = np.abs(a - b)
        if not np.issubdtype(tf_state[key].dtype, np.floating):
            difference = np.where(difference > 0, np.inf, 0.0)  # counters: equal or infinitely far
        else:
            sum_[1] += float(np.sum((a - before) ** 2))
            sum_[3] = max(sum_[3], float(np.max(np.abs(a), initial=0.0)))
        sum_[0] += float(np.sum(difference ** 2))
        sum_[2] = max(sum_[2], float(np.max(difference, initial=0.0)))
        sum_[4] += int(np.sum(difference > 1e-5))
        sum_[5] += difference.size
    figures = {}
    for group in (group for group in GROUPS if group in sums):
        squared_difference, squared_update, max_diff, max_value, over, total = sums[group]
        update_error = (np.sqrt(squared_difference / squared_update) if squared_update > 0
                        else (0.0 if squared_difference == 0 else np.inf))
        figures[group] = {"update_error": float(update_error), "max_abs_diff": max_diff, "max_abs_value": max_value,
                          "fraction_over_1e-5": over / total}
    return figures


def main(argv=None):
    args = parse_args(argv)
    if args.side is not None:
        if args.side == "jax":
            sys.modules["tensorflow"] = None  # the JAX side must not need TensorFlow
        sys.path.insert(0, ROOT)
        seconds = train(experiment_config(args), args.side, args.workdir, args.steps, args.seed)
        with open(os.path.join(args.workdir, f"{args.side}.json"), "w") as f:
            json.dump({"seconds": seconds}, f)
        return 0
    from sagan_tf.config.presets import preset_names

    if args.config_json is None and args.preset not in preset_names():
        print(f"Unknown preset {args.preset!r}. Known presets: {', '.join(preset_names())}.", file=sys.stderr)
        return 2
    config = experiment_config(args)
    passed = [f"--preset={args.preset}"] if args.preset else []
    passed += [f"--steps={args.steps}", f"--seed={args.seed}"]
    passed += [f"--batch_size={args.batch_size}"] if args.batch_size else []
    passed += ["--small_data"] if args.small_data else []
    passed += [f"--config_json={os.path.abspath(args.config_json)}"] if args.config_json else []
    with tempfile.TemporaryDirectory(prefix="backend_parity_") as workdir:
        seconds = {}
        for side in ("tensorflow", "jax"):
            env = {**os.environ, "KERAS_BACKEND": side, "TF_CPP_MIN_LOG_LEVEL": "2",
                   "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
            start = time.perf_counter()
            subprocess.run([sys.executable, os.path.abspath(__file__), *passed, f"--side={side}",
                            f"--workdir={workdir}"], env=env, check=True)
            with open(os.path.join(workdir, f"{side}.json")) as f:
                seconds[side] = {"process_s": round(time.perf_counter() - start, 1),
                                 "steps_s": round(json.load(f)["seconds"], 2)}
        figures = compare(workdir)
    within = within_tolerance(figures, args.tolerance)
    print(json.dumps({
        "benchmark": "backend_parity", "preset": args.preset, "steps": args.steps,
        "batch_size": config.training.batch_size, "small_data": args.small_data, "precision": "float32",
        "adam_epsilon": ADAM_EPSILON, "tolerance": args.tolerance, "within_tolerance": within,
        **{name: {group: float(f"{values[name]:.3g}") for group, values in figures.items()}
           for name in ("update_error", "max_abs_diff", "max_abs_value", "fraction_over_1e-5")},
        "seconds": seconds}))
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
