"""Serving entry points: `python -m export.run` (a training run -> a TF Serving SavedModel) and `export.client`."""
