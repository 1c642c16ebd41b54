"""The JAX side of tests/models/test_jax_step.py: `KERAS_BACKEND=jax python jax_step_checks.py WORKDIR [PRECISION]`.

A pytest process has one Keras backend (TensorFlow), so the JAX checks run here, once per test module, in a
process where TensorFlow cannot be imported, and write WORKDIR/results.json for the tests to read (the parity
check needs its TensorFlow half to have run first, unless WORKDIR/config.json says "parity": false):

  parity: the JAX train steps of `backend_parity.train` on the config and inputs the test wrote (its TensorFlow
    steps ran in the test process), state in WORKDIR/jax.npz.
  reproducible: a model built from seed 1 (weights and noise) trained two steps with `fit` twice from the same
    state ends with the same state both times, bit for bit (in the precision of the second argument: float32 or
    mixed_bfloat16); its logs are finite and its noise seed generator advanced.
  failures: `fit` and `train_on_batch` calls that raise, on that model with d_steps 2 (a batch of 3 images raises at
    trace time): for each, the error ("<type>: <message>") and whether the model then holds the expected state:
    the state it started from when no step completed (first_step: `fit`'s first step raises; callback_list: the
    same with a `keras.callbacks.CallbackList`; interrupted: Ctrl-C while tracing the first step), the state a
    `train_on_batch` of the first batch gives when `fit` raises at the second (second_step), and, for a
    `train_on_batch` that raises after one that trained and an assignment (train_on_batch), the assigned state
    after `jax_state_sync()`.
  errors: the message of each refused setting, or None where nothing was raised; latents_error: what
    `latents.truncated_latents` (TensorFlow's random ops) raises without TensorFlow.
  imports: the backend-neutral modules imported, with TensorFlow unimportable.
"""

import json
import os
import sys
import time

sys.modules["tensorflow"] = None  # as on a machine without TensorFlow
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import backend_parity  # noqa: E402
# The backend-neutral core, imported here to show that it imports without TensorFlow.
from sagan_tf import layers, models  # noqa: E402,F401
from sagan_tf.models import augment, losses, regularizers  # noqa: E402,F401
from sagan_tf.sampling import latents  # noqa: E402,F401
from sagan_tf.config import ExperimentConfig  # noqa: E402
from sagan_tf.models import build_sagan  # noqa: E402


def error_of(make):
    try:
        make()
    except ValueError as error:
        return str(error)
    return None


def recompiled(model, **attributes):
    """Compiles `model` again with `attributes` set (as its constructor would have set them), then puts them back."""
    saved = {name: getattr(model, name) for name in attributes}
    try:
        for name, value in attributes.items():
            setattr(model, name, value)
        model.compile(g_optimizer=model.g_optimizer, d_optimizer=model.d_optimizer)
    finally:
        for name, value in saved.items():
            setattr(model, name, value)


def uneven_batch(model, images, labels):
    """Trains `model` with d_steps 2 on `images`, an odd number of them."""
    model.d_steps = 2
    try:
        model.train_on_batch(images, labels)
    finally:
        model.d_steps = 1


def state_of(variables):
    """The values of `variables`, or None when one has no value (Keras's JAX trainer detached it)."""
    try:
        return [np.asarray(v.numpy()) for v in variables]
    except TypeError:  # a detached variable's placeholder value: its initializer was dropped after building
        return None


def failures(model, images, labels):
    """The `failures` entry of results.json (module docstring)."""
    variables = [variable for group in model.jax_state_variables() for variable in group]  # what Keras detaches
    good, bad = (images[:4], labels[:4]), (images[:3], labels[:3])  # d_steps 2 divides 4, not 3

    def check(call, expected=None, then=lambda: None):
        start = state_of(variables)
        error = None
        try:
            call()
        except (Exception, KeyboardInterrupt) as raised:
            error = f"{type(raised).__name__}: {raised}"
        then()
        now = state_of(variables)
        if now is None:  # the values were lost: put them back for the next check
            for variable, value in zip(variables, start):
                variable.assign(value)
        kept = now is not None and all(np.array_equal(a, b) for a, b in zip(expected or start, now))
        return {"error": error, "kept": bool(kept)}

    def interrupt(*args):
        raise KeyboardInterrupt

    model.d_steps = 2
    model.make_train_function(force=True)  # no trace of d_steps 1 in its cache
    results = {"first_step": check(lambda: model.fit(*bad, batch_size=3, verbose=0)),
               "callback_list": check(lambda: model.fit(*bad, batch_size=3, verbose=0, callbacks=(
                   keras.callbacks.CallbackList([keras.callbacks.History()], model=model))))}
    begin_step, model._begin_step = model._begin_step, interrupt
    results["interrupted"] = check(lambda: model.fit(*good, batch_size=4, verbose=0))
    model._begin_step = begin_step

    start = state_of(variables)
    model.train_on_batch(*good)
    one_step = state_of(variables)
    for variable, value in zip(variables, start):
        variable.assign(value)
    results["second_step"] = check(
        lambda: model.fit((batch for batch in [good, bad]), steps_per_epoch=2, shuffle=False, verbose=0), one_step)

    model.train_on_batch(*good)
    for variable in model.trainable_variables:
        variable.assign(variable.value + 0.01)
    assigned = state_of(variables)
    results["train_on_batch"] = check(lambda: model.train_on_batch(*bad), assigned,
                                      then=model.jax_state_sync)  # what a callback reading `self.model` does
    model.d_steps = 1
    model.make_train_function(force=True)
    return results


def trained_twice(model, images, labels, batch_size):
    """(the state after two `fit` steps from the model's state, run twice with that state put back in between;
    whether every log was finite; whether the noise seed generator advanced)."""
    variables = list(model.variables) + list(model.g_optimizer.variables) + list(model.d_optimizer.variables)
    initial = [np.asarray(v.numpy()) for v in variables]
    states, finite = [], True
    for _ in range(2):
        for variable, value in zip(variables, initial):
            variable.assign(value)
        history = model.fit(images, labels, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
        finite = finite and all(np.isfinite(values).all() for values in history.history.values())
        states.append([np.asarray(v.numpy()) for v in variables])
    seed_index = next(i for i, v in enumerate(variables) if v is model.seed_generator.state)
    return states, finite, not np.array_equal(states[0][seed_index], initial[seed_index])


def main(workdir, precision="float32"):
    assert keras.backend.backend() == "jax", keras.backend.backend()
    with open(os.path.join(workdir, "config.json")) as f:
        values = json.load(f)
    config = ExperimentConfig.from_dict(values["config"])
    results = {"imports": sorted(name for name in sys.modules if name.startswith("sagan_tf"))}
    seconds = {}
    if values.get("parity", True):
        start = time.perf_counter()
        backend_parity.train(config, "jax", workdir, values["steps"], values["seed"])
        seconds["parity"] = time.perf_counter() - start

    # Seeded noise: the step threads the seed generators' states, so the same state gives the same run.
    plain = config.replace(augment="none", lecam_weight=0.0, orthogonal_reg=0.0, fake_labels="uniform", d_steps=1)
    rng = np.random.default_rng(0)
    batch = plain.training.batch_size
    images = rng.uniform(-1, 1, (2 * batch, plain.model.image_size, plain.model.image_size, 3)).astype("float32")
    labels = rng.integers(0, plain.model.num_classes, (2 * batch,)).astype("int32")
    start = time.perf_counter()
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(1)
    model = build_sagan(plain, seed=1)
    (first, second), finite, seed_moved = trained_twice(model, images, labels, batch)
    keras.mixed_precision.set_global_policy("float32")
    seconds["seeded"] = time.perf_counter() - start
    results["reproducible"] = {"identical": all(np.array_equal(a, b) for a, b in zip(first, second)),
                               "finite": finite, "seed_moved": seed_moved, "variables": len(first),
                               "precision": precision}

    start = time.perf_counter()
    results["failures"] = failures(model, images, labels)
    seconds["failures"] = time.perf_counter() - start

    # The refusals, checked on the model just trained: they are raised before any computation.
    start = time.perf_counter()
    results["errors"] = {"grad_accumulation": error_of(lambda: recompiled(model, grad_accumulation=2)),
                         "uneven_batch": error_of(lambda: uneven_batch(model, images[:3], labels[:3]))}
    keras.mixed_precision.set_global_policy("mixed_float16")
    results["errors"]["mixed_float16"] = error_of(lambda: recompiled(model))
    keras.mixed_precision.set_global_policy("float32")
    seconds["errors"] = time.perf_counter() - start
    results["seconds"] = seconds
    try:
        latents.truncated_latents(2, 8, seed=0, truncation=1.0)
        results["latents_error"] = None
    except ImportError as error:
        results["latents_error"] = str(error)
    results["tensorflow_imported"] = sys.modules.get("tensorflow") is not None
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
