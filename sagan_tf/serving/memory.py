"""How many images one serving request may ask for: the export's cap, from a memory budget.

    choice = serving_memory.choose_max_batch_size(config, memory_budget_mib=2048)
    choice["max_batch_size"], choice["expected_peak_mib"]     # 1634 images, 2047.4 MiB for synthetic32

A request for b images grows the serving process by about b times a per-image figure (the latents, every feature map
of the generator, the attention maps, the uint8 images and their PNGs), so one unbounded request can get the process,
and every model it serves, killed for memory. The cap is the largest b whose expected growth stays within the budget.

The per-image figures of the presets were measured by `benchmarks/serving_memory.py` (`MEASURED_MIB_PER_IMAGE`: the
growth of the peak resident memory of a process that loads the export and answers one `generate` request of 64
images, divided by 64; fixed first-call costs such as tracing are included, so the figure overstates the growth per
image of larger requests a little). A model that is not a preset as it stands (other widths, image size or
attention) gets an estimate instead: its generator's feature maps and attention maps per image
(`activation_mib_per_image`) times the largest ratio of measured figure to that count among the presets.
"""

from sagan_tf.config import presets

#: The memory budget of one request, in MiB, when none is given (`export.run --memory_budget_mib`).
DEFAULT_MEMORY_BUDGET_MIB = 2048
#: MiB of peak resident memory per image of a `generate` request of 64 images (benchmarks/serving_memory.py,
#: TF 2.21 on a 2-core Intel Xeon, CPU only).
MEASURED_MIB_PER_IMAGE = {
    "synthetic32": 1.253,
    "cifar32": 5.009,
    "dcgan64": 5.547,
    "imagenet128": 25.77,
}
#: The largest cap a budget may give, whatever the model: beyond it a request is better split by the client.
MAX_DEFAULT_BATCH_SIZE = 4096


def activation_mib_per_image(config):
    """MiB of the generator's float32 feature maps and attention maps for one image: a count that grows as memory does.

    Args:
      config: a `ModelConfig`.

    Returns:
      The sum over the generator's stages of resolution^2 * channels, plus resolution^2 * keys for each attention
      layer (keys: resolution^2, or a quarter of it with 2x2-pooled keys) and the 3-channel output, times 4 bytes.
    """
    floats = sum(resolution ** 2 * width
                 for resolution, width in zip(config.generator_resolutions(), config.g_channels))
    floats += config.image_size ** 2 * 3
    for resolution in config.g_attention_resolutions:
        keys = resolution ** 2 // (4 if config.attention.pool_keys else 1)
        floats += resolution ** 2 * keys
    return floats * 4 / 2 ** 20


def _is_preset(config):
    if config.name not in presets.PRESETS or config.name not in MEASURED_MIB_PER_IMAGE:
        return False
    return presets.get_preset(config.name).model.to_dict() == config.to_dict()


def mib_per_image(config):
    """(MiB per image, where the figure comes from) for one serving request of `config`'s generator.

    Args:
      config: a `ModelConfig`.

    Returns:
      The measured figure and "measured (<preset>)" when `config` is a preset unchanged; otherwise the estimate
      (see the module docstring) and "estimated".
    """
    if _is_preset(config):
        return MEASURED_MIB_PER_IMAGE[config.name], f"measured ({config.name})"
    ratio = max(MEASURED_MIB_PER_IMAGE[name] / activation_mib_per_image(presets.get_preset(name).model)
                for name in MEASURED_MIB_PER_IMAGE)
    return ratio * activation_mib_per_image(config), "estimated"


def choose_max_batch_size(config, max_batch_size=None, memory_budget_mib=DEFAULT_MEMORY_BUDGET_MIB):
    """The export's cap: `max_batch_size` when given, else the most images whose expected memory fits the budget.

    Args:
      config: a `ModelConfig`.
      max_batch_size: an explicit cap (an integer >= 1), or None to derive it from the budget.
      memory_budget_mib: MiB one request may add to the serving process (> 0).

    Returns:
      A dict: `max_batch_size`, `memory_budget_mib`, `mib_per_image`, `mib_per_image_source`, `expected_peak_mib`
      (the growth expected from one request at the cap) and, when an explicit cap exceeds the budget or the budget
      does not hold one image, `warning`.

    Raises:
      ValueError: a cap that is not an integer >= 1, or a budget that is not a number > 0.
    """
    if max_batch_size is not None and (isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int)
                                       or max_batch_size < 1):
        raise ValueError(f"max_batch_size must be an integer >= 1 or None. Received: max_batch_size={max_batch_size!r}")
    if isinstance(memory_budget_mib, bool) or not isinstance(memory_budget_mib, (int, float)) or not (
            memory_budget_mib > 0):
        raise ValueError(f"memory_budget_mib must be a number > 0. Received: memory_budget_mib={memory_budget_mib!r}")
    per_image, source = mib_per_image(config)
    cap = max_batch_size
    if cap is None:
        cap = max(1, min(MAX_DEFAULT_BATCH_SIZE, int(memory_budget_mib // per_image)))
    choice = {"max_batch_size": cap, "memory_budget_mib": memory_budget_mib, "mib_per_image": round(per_image, 3),
              "mib_per_image_source": source, "expected_peak_mib": round(cap * per_image, 1)}
    if cap * per_image > memory_budget_mib:
        reason = ("the explicit max_batch_size" if max_batch_size is not None
                  else "even one image (the cap cannot be below 1)")
        choice["warning"] = (f"One request at max_batch_size={cap} is expected to take about "
                             f"{choice['expected_peak_mib']:g} MiB ({per_image:.3g} MiB per image, {source}), more "
                             f"than the memory budget of {memory_budget_mib:g} MiB: {reason} exceeds it. A server "
                             "without that much memory to spare can be killed by one such request.")
    return choice


__all__ = ["DEFAULT_MEMORY_BUDGET_MIB", "MEASURED_MIB_PER_IMAGE", "MAX_DEFAULT_BATCH_SIZE", "activation_mib_per_image",
           "mib_per_image", "choose_max_batch_size"]
