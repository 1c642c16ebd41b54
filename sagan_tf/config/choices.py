"""The named choices of a training configuration, as plain data: no framework is imported here, so that
`sagan_tf.config` validates a configuration without TensorFlow or Keras.

`sagan_tf.models.losses` and `sagan_tf.models.augment` implement what these names name and take them from here.
"""

#: The losses `TrainingConfig.loss` may name (`sagan_tf.models.losses.LOSSES`): the hinge loss (SAGAN eq. 4) and the
#: non-saturating loss.
LOSS_NAMES = ("hinge", "non_saturating")
#: What `augment` may be: "none" (the SAGAN paper's recipe), "diffaugment" (always on), "ada" (gated by p).
AUGMENT_MODES = ("none", "diffaugment", "ada")
#: The ops `augment_policy` may name, in DiffAugment's order.
POLICY_OPS = ("color", "translation", "cutout")
DEFAULT_POLICY = "color,translation,cutout"


def parse_policy(policy):
    """The ops of an `augment_policy` string, in order.

    Args:
      policy: a comma-separated list of `POLICY_OPS` names, each at most once (e.g. "color,translation,cutout").

    Returns:
      A tuple of op names.

    Raises:
      ValueError: an empty list, an unknown name or a repeated one.
    """
    names = tuple(name.strip() for name in str(policy).split(",")) if str(policy).strip() else ()
    unknown = [name for name in names if name not in POLICY_OPS]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(f"augment_policy must be a comma-separated list of {', '.join(POLICY_OPS)}, each at most "
                         f"once. Received: augment_policy={policy!r}")
    return names


__all__ = ["LOSS_NAMES", "AUGMENT_MODES", "POLICY_OPS", "DEFAULT_POLICY", "parse_policy"]
