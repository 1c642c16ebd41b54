"""sagan_tf.serving.memory: the export's cap from a memory budget, checked against hand computations."""

import dataclasses
import math

import pytest

from sagan_tf.config import presets
from sagan_tf.serving import memory as serving_memory
from tests.tiny import tiny_model


def test_activation_count_of_synthetic32_by_hand():
    # Stages 4, 8, 16, 32 with 128, 128, 64, 32 channels; a 3-channel 32x32 output; attention at 16x16 with 2x2-pooled
    # keys: 256 queries x 64 keys.
    floats = 16 * 128 + 64 * 128 + 256 * 64 + 1024 * 32 + 1024 * 3 + 256 * 64
    config = presets.get_preset("synthetic32").model
    assert serving_memory.activation_mib_per_image(config) == pytest.approx(floats * 4 / 2**20)
    # dcgan64: full keys (1024 x 1024 at 32x32); its output layer makes the 64x64 images.
    dcgan = presets.get_preset("dcgan64").model
    floats = 16 * 512 + 64 * 256 + 256 * 128 + 1024 * 64 + 4096 * 3 + 256 * 256 + 1024 * 1024
    assert serving_memory.activation_mib_per_image(dcgan) == pytest.approx(floats * 4 / 2**20)


@pytest.mark.parametrize("name", sorted(serving_memory.MEASURED_MIB_PER_IMAGE))
def test_a_preset_gets_its_measured_figure_and_the_most_images_within_the_budget(name):
    config = presets.get_preset(name).model
    per_image = serving_memory.MEASURED_MIB_PER_IMAGE[name]
    for budget in (serving_memory.DEFAULT_MEMORY_BUDGET_MIB, 512):
        choice = serving_memory.choose_max_batch_size(config, memory_budget_mib=budget)
        cap = choice["max_batch_size"]
        assert cap == min(math.floor(budget / per_image), serving_memory.MAX_DEFAULT_BATCH_SIZE)
        assert cap * per_image <= budget < (cap + 1) * per_image
        assert choice == {"max_batch_size": cap, "memory_budget_mib": budget, "mib_per_image": per_image,
                          "mib_per_image_source": f"measured ({name})",
                          "expected_peak_mib": round(cap * per_image, 1)}


def test_the_default_caps_of_the_presets():
    # What `python -m export.run` gives each preset with its default budget of 2 GiB (figures of one 2-core Xeon).
    caps = {name: serving_memory.choose_max_batch_size(presets.get_preset(name).model)["max_batch_size"]
            for name in serving_memory.MEASURED_MIB_PER_IMAGE}
    assert caps == {"synthetic32": 1634, "cifar32": 408, "dcgan64": 369, "imagenet128": 79}
    assert set(serving_memory.MEASURED_MIB_PER_IMAGE) == set(presets.preset_names())


#: Floats of each preset's generator feature maps, output and attention maps per image, by hand (as above).
PRESET_FLOATS = {
    "synthetic32": 16 * 128 + 64 * 128 + 256 * 64 + 1024 * 32 + 1024 * 3 + 256 * 64,
    "cifar32": 16 * 256 + 64 * 256 + 256 * 256 + 1024 * 256 + 1024 * 3 + 256 * 64,
    "dcgan64": 16 * 512 + 64 * 256 + 256 * 128 + 1024 * 64 + 4096 * 3 + 256 * 256 + 1024 * 1024,
    # Stages 4 to 128 with 1024, 1024, 512, 256, 128, 64 channels; attention at 32x32 with 2x2-pooled keys.
    "imagenet128": 16 * 1024 + 64 * 1024 + 256 * 512 + 1024 * 256 + 4096 * 128 + 16384 * 64 + 16384 * 3 + 1024 * 256,
}


def test_a_changed_preset_or_another_model_is_estimated_conservatively():
    ratios = {name: serving_memory.MEASURED_MIB_PER_IMAGE[name] / (floats * 4 / 2**20)
              for name, floats in PRESET_FLOATS.items()}
    assert max(ratios, key=ratios.get) == "synthetic32"
    wider = dataclasses.replace(presets.get_preset("synthetic32").model, g_channels=(256, 256, 128, 64))
    per_image, source = serving_memory.mib_per_image(wider)
    assert source == "estimated"
    # synthetic32 with wider stages: 4x4x256, 8x8x256, 16x16x128, 32x32x64, the output and the attention map.
    wider_floats = 16 * 256 + 64 * 256 + 256 * 128 + 1024 * 64 + 1024 * 3 + 256 * 64
    assert per_image == pytest.approx(ratios["synthetic32"] * wider_floats * 4 / 2**20)
    assert per_image > serving_memory.MEASURED_MIB_PER_IMAGE["synthetic32"]  # wider layers, more memory
    tiny = serving_memory.choose_max_batch_size(tiny_model(32))
    assert tiny["max_batch_size"] == serving_memory.MAX_DEFAULT_BATCH_SIZE  # tiny images: the largest default cap


def test_an_explicit_cap_wins_with_a_warning_over_budget():
    config = presets.get_preset("imagenet128").model
    within = serving_memory.choose_max_batch_size(config, max_batch_size=8)
    assert within["max_batch_size"] == 8 and "warning" not in within
    over = serving_memory.choose_max_batch_size(config, max_batch_size=1024, memory_budget_mib=2048)
    assert over["max_batch_size"] == 1024
    assert over["expected_peak_mib"] == pytest.approx(1024 * 25.77, abs=0.1)
    assert over["warning"].startswith("One request at max_batch_size=1024 is expected to take about 26388.5 MiB "
                                      "(25.8 MiB per image, measured (imagenet128)), more than the memory budget of "
                                      "2048 MiB")
    # A budget below one image still allows one image per request, and says so.
    tight = serving_memory.choose_max_batch_size(config, memory_budget_mib=10)
    assert tight["max_batch_size"] == 1 and "even one image" in tight["warning"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_batch_size=0), "Received: max_batch_size=0"),
    (dict(max_batch_size=2.5), "Received: max_batch_size=2.5"),
    (dict(max_batch_size=True), "Received: max_batch_size=True"),
    (dict(memory_budget_mib=0), "Received: memory_budget_mib=0"),
    (dict(memory_budget_mib=float("nan")), "Received: memory_budget_mib=nan"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        serving_memory.choose_max_batch_size(presets.get_preset("synthetic32").model, **kwargs)
