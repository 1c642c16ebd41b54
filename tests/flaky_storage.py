"""`python -m tests.flaky_storage <flags of training.run>`: `python -m training.run` whose first $FLAKY_FAILURES
reads of the checkpoint $FLAKY_CHECKPOINT (e.g. "ckpt-4") fail with UnavailableError, as on storage that does not
answer for a while (`tests.tiny.flaky_checkpoint_restore`); retries wait $FLAKY_DELAY seconds (default 0.1)."""

import os

from sagan_tf import cli
from training import run


def main(argv):
    import tensorflow as tf  # after cli.run has set up the console, as training.run imports it

    from sagan_tf.run import checkpoint
    from tests.tiny import flaky_checkpoint_restore

    tf.train.Checkpoint.restore = flaky_checkpoint_restore(os.environ["FLAKY_CHECKPOINT"],
                                                           int(os.environ["FLAKY_FAILURES"]))
    checkpoint.RETRY_DELAY_SECONDS = float(os.environ.get("FLAKY_DELAY", "0.1"))
    return run.main(argv)


if __name__ == "__main__":
    cli.run(main, run.define_flags)
