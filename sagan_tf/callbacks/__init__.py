"""Keras callbacks for training a `sagan_tf.models.SAGAN` with plain `model.fit`, one job per module: the shared
schedule (`periodic`), sample grids (`samples`), the non-finite guard (`guard`), checkpoints and the best one
(`checkpoints`), progress lines with the health signals (`progress`, `health`), evaluations (`evaluation`) and a clean
stop on a signal (`stop`).

    store = CheckpointStore("run", checkpoint.gan_checkpoint(model), keep_checkpoints=3)
    writer = tf.summary.create_file_writer("run")
    model.fit(dataset, steps_per_epoch=1000, callbacks=[
        callbacks.NonFiniteGuard(),
        callbacks.GracefulStop(),
        callbacks.ProgressLogger(total_steps=1000, every_n_steps=50, summary_writer=writer),
        callbacks.SampleGrid("run/samples", every_n_steps=200, summary_writer=writer),
        callbacks.EvaluateEvery(500, evaluation.Evaluator.create("synthetic", 32), summary_writer=writer),
        callbacks.CheckpointEvery(store, every_n_steps=500),
    ])

The training step is the generator optimizer's `iterations` (`global_step`): the number of generator updates,
which `TrainingConfig.train_steps` counts. The periodic callbacks share one schedule (`PeriodicCallback`): they act
when the step crosses a multiple of their period (so they stay correct when one `fit` batch runs several steps,
`steps_per_execution`), optionally when training starts, and when it ends unless they just acted at that step.

No callback costs a device round trip on a step where it does nothing. Steps are counted on the host (the step
read once when `fit` begins plus the batches run since), and the periodic work happens in `on_train_batch_begin`,
which Keras calls on the main thread between two train functions, for the state the previous batches left. No
callback here overrides `on_train_batch_end` except `NonFiniteGuard`, which is marked `async_safe`: any other
override makes Keras wait on the main thread for every step's logs before it starts the next step (Keras's
asynchronous callback dispatch is off for the whole `fit`), where a GPU step takes milliseconds.

Each callback is independent; put `NonFiniteGuard` first, so that no later one acts on a non-finite state,
`BestCheckpoint` after the `EvaluateEvery` it reads, and `CheckpointEvery` last so that its end-of-training save sees
the final state.
"""

from sagan_tf.callbacks.checkpoints import (METRIC_MODES, METRIC_SWITCHES, BestCheckpoint, CheckpointEvery,
                                            parse_best_metric)
from sagan_tf.callbacks.evaluation import EvaluateEvery, format_figures, summarize_evaluations
from sagan_tf.callbacks.guard import NonFiniteGuard, refuse_nonfinite_state
from sagan_tf.callbacks.periodic import PeriodicCallback, global_step, sampling_generator
from sagan_tf.callbacks.progress import ProgressLogger, format_duration
from sagan_tf.callbacks.samples import SampleGrid
from sagan_tf.callbacks.stop import GracefulStop
from sagan_tf.evaluation.evaluator import FIGURES

__all__ = ["global_step", "sampling_generator", "PeriodicCallback", "SampleGrid", "CheckpointEvery",
           "NonFiniteGuard", "ProgressLogger", "EvaluateEvery", "BestCheckpoint", "GracefulStop", "format_figures",
           "format_duration", "summarize_evaluations", "parse_best_metric", "refuse_nonfinite_state", "FIGURES",
           "METRIC_MODES", "METRIC_SWITCHES"]
