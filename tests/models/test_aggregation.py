"""State that every replica updates on its own names its aggregation: "none" (each replica assigns its own copy).

Keras changed the default of a new variable's aggregation from "mean" (3.7) to "none" (3.8; keras-team/keras#20544,
#20695). Under "mean", an assignment in replica context is a cross-replica merge, which per-replica XLA cannot
compile; so the layers and the small-data options pass "none" themselves, and `setup.py` requires Keras >= 3.8, whose
stock layers (the EMA generator's weights, assigned in the train step) create theirs with "none".
"""

import pathlib
import re

import keras
import pytest

from sagan_tf.models import build_sagan
from tests.tiny import tiny_config

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def keras_3_7_defaults(monkeypatch):
    """New variables default to aggregation "mean", as in Keras 3.7, unless their creator names one."""
    init = keras.Variable.__init__

    def variable_init(self, *args, **kwargs):
        kwargs.setdefault("aggregation", "mean")
        init(self, *args, **kwargs)

    add_weight = keras.layers.Layer.add_weight

    def layer_add_weight(self, *args, **kwargs):
        kwargs.setdefault("aggregation", "mean")
        return add_weight(self, *args, **kwargs)

    monkeypatch.setattr(keras.Variable, "__init__", variable_init)
    monkeypatch.setattr(keras.layers.Layer, "add_weight", layer_add_weight)


def test_replica_updated_state_names_aggregation_none(keras_3_7_defaults):
    config = tiny_config(augment="ada", lecam_weight=0.5)
    model = build_sagan(config, seed=1)
    state = {"moving statistics": model._replica_averaged,
             "spectral-norm u": [v for v in model.discriminator.weights + model.generator.weights
                                 if v.path.endswith("/u")],
             "ADA": list(model.ada.variables.values()), "LeCam": list(model.lecam.variables.values())}
    assert all(state.values())
    for what, variables in state.items():
        assert {v.aggregation for v in variables} == {"none"}, (what, [(v.path, v.aggregation) for v in variables])


def test_setup_requires_a_keras_whose_stock_layers_default_to_none():
    requirement = re.search(r'"keras>=(\d+)\.(\d+)', (ROOT / "setup.py").read_text())
    assert requirement and tuple(map(int, requirement.groups())) >= (3, 8)
    assert tuple(map(int, keras.__version__.split(".")[:2])) >= (3, 8)
