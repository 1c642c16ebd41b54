"""The settings of an experiment: `ExperimentConfig` (a `ModelConfig` and a `TrainingConfig`), each setting declared
once with `setting` (`experiment`); the named configurations per dataset (`presets`); the named choices of losses and
augmentations (`choices`)."""

from sagan_tf.config.experiment import (BLOCK_TYPES, CONFIG_FORMAT, FAKE_LABELS, MODEL_FIELDS, TRAINING_FIELDS,
                                        AttentionConfig, ExperimentConfig, ModelConfig, TrainingConfig,
                                        as_model_config, setting, settings)

__all__ = ["AttentionConfig", "BLOCK_TYPES", "CONFIG_FORMAT", "ExperimentConfig", "FAKE_LABELS", "MODEL_FIELDS",
           "ModelConfig", "TRAINING_FIELDS", "TrainingConfig", "as_model_config", "setting", "settings"]
