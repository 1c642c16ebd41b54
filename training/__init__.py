"""Entry points for training: `python -m training.run` (absl flags) -> `training.train_lib.run(config, options)`."""
