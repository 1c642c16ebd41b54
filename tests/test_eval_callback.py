"""EvaluateEvery: evaluates at start, every n steps and at the end; TensorBoard scalars; history and time."""

import glob
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import eval_callback


class StubModel:
    """What the callback reads from a SAGAN: the generator optimizer's step and the sampling generator."""

    def __init__(self):
        self.g_optimizer = types.SimpleNamespace(iterations=keras.Variable(0, dtype="int64"))
        self.sampling_generator = object()

    def advance(self, steps=1):
        self.g_optimizer.iterations.assign_add(steps)


def fake_evaluate(model, calls):
    """Figures that depend on the step at which they are asked for, so the test can check which step was logged."""

    def evaluate(generator):
        assert generator is model.sampling_generator
        step = int(model.g_optimizer.iterations.numpy())
        calls.append(step)
        return {"fid": 100.0 - step, "inception_score": 1.0 + step / 10, "kid": 0.5 / (step + 1), "num_samples": 64,
                "seconds": 0.0}

    return evaluate


def drive(callback, model, steps, per_batch=1):
    callback.set_model(model)
    callback.on_train_begin()
    for batch in range(steps // per_batch):
        model.advance(per_batch)
        callback.on_train_batch_end(batch)
    callback.on_train_end()


def event_scalars(directory):
    values = {}
    for path in glob.glob(f"{directory}/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                values.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def test_fires_at_start_every_n_steps_and_end_and_writes_tensorboard(tmp_path):
    model, calls, lines = StubModel(), [], []
    writer = tf.summary.create_file_writer(str(tmp_path))
    callback = eval_callback.EvaluateEvery(3, fake_evaluate(model, calls), writer, print_fn=lines.append)
    drive(callback, model, 7)
    writer.close()
    assert calls == [0, 3, 6, 7]
    assert sorted(callback.history) == [0, 3, 6, 7]
    assert callback.history[6]["fid"] == 94.0 and callback.seconds > 0
    scalars = event_scalars(tmp_path)
    assert scalars["eval/fid"] == {0: 100.0, 3: 97.0, 6: 94.0, 7: 93.0}
    np.testing.assert_allclose([scalars["eval/inception_score"][s] for s in (0, 3, 6, 7)], [1.0, 1.3, 1.6, 1.7],
                               rtol=1e-6)
    np.testing.assert_allclose(scalars["eval/kid"][3], 0.125, rtol=1e-6)
    assert len(lines) == 4
    assert lines[1].startswith("eval step 3: FID 97.00  IS 1.30  KID 0.125 (64 samples, ")
    assert callback.summary() == "FID 100.0 -> 93.0, IS 1.00 -> 1.70, KID 0.5 -> 0.0625"


def test_steps_crossed_by_multi_step_batches_and_no_duplicate_at_the_end():
    model, calls = StubModel(), []
    callback = eval_callback.EvaluateEvery(4, fake_evaluate(model, calls), print_fn=lambda line: None)
    drive(callback, model, 8, per_batch=3)  # steps 3, 6: crosses 4 at 6; ends at 6, already evaluated
    assert calls == [0, 6]


def test_only_start_and_end_with_zero_period_and_switches():
    model, calls = StubModel(), []
    drive(eval_callback.EvaluateEvery(0, fake_evaluate(model, calls), print_fn=lambda line: None), model, 5)
    assert calls == [0, 5]
    model, calls = StubModel(), []
    model.advance(10)  # a resumed run starts at its checkpoint's step
    drive(eval_callback.EvaluateEvery(2, fake_evaluate(model, calls), print_fn=lambda line: None, at_start=False,
                                      at_end=False), model, 3)
    assert calls == [12]


def test_summary_without_kid_and_validation():
    history = {5: {"fid": 50.0, "inception_score": 2.0}, 0: {"fid": 200.0, "inception_score": 1.05, "kid": 0.3}}
    assert eval_callback.summarize(history) == "FID 200.0 -> 50.0, IS 1.05 -> 2.00"
    assert eval_callback.summarize({}) is None
    with pytest.raises(ValueError, match="every_n_steps must be an integer >= 0. Received: every_n_steps=-1"):
        eval_callback.EvaluateEvery(-1, lambda generator: {})
    with pytest.raises(ValueError, match="evaluate_fn must be callable"):
        eval_callback.EvaluateEvery(1, None)
