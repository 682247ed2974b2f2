"""The pruning wrapper: a Keras layer wrapper that masks output channels."""

import keras
from keras import ops


def serialize_schedule(schedule):
    """A JSON-able description of a tfmot PruningSchedule (or None)."""
    if schedule is None:
        return None
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()["config"]}


def deserialize_schedule(config):
    """Rebuild a tfmot PruningSchedule from `serialize_schedule` output."""
    if config is None:
        return None
    import tensorflow_model_optimization as tfmot
    cls = getattr(tfmot.sparsity.keras, config["class_name"], None)
    if cls is None:
        raise ValueError(f"unknown pruning schedule {config['class_name']!r}")
    return cls(**config["config"])


@keras.saving.register_keras_serializable("wootz_keras")
class PruneWrapper(keras.layers.Wrapper):
    """Multiplies the wrapped layer's output channels by a 0/1 mask.

    The mask is a non-trainable weight, so masked models train with
    `model.fit` and save / load as `.keras`. `rate` is the target fraction
    of the layer's dependency group to remove; `schedule` an optional tfmot
    PruningSchedule for gradual pruning (see `UpdatePruningStep`).

    Example:
        >>> layer = PruneWrapper(keras.layers.Dense(4), rate=0.5)
        >>> layer(ops.ones((1, 3))).shape
        (1, 4)
    """

    _wootz_wrapper = True

    def __init__(self, layer, rate=0.0, schedule=None, **kwargs):
        kwargs.setdefault("name", layer.name)
        super().__init__(layer, **kwargs)
        self.rate = float(rate)
        self.schedule = deserialize_schedule(schedule) if isinstance(schedule, dict) else schedule

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        channels = self.layer.compute_output_shape(input_shape)[-1]
        self.mask = self.add_weight(name="mask", shape=(channels,), initializer="ones",
                                    trainable=False)
        self.pruning_step = self.add_weight(name="pruning_step", shape=(), dtype="int64",
                                            initializer="zeros", trainable=False)
        self.built = True

    def call(self, inputs, training=None):
        outputs = self.layer(inputs, training=training)
        return outputs * ops.cast(self.mask, outputs.dtype)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, schedule=serialize_schedule(self.schedule))
        return config


def is_pruned(model):
    """True if any layer of `model` (nested models included) is a PruneWrapper.

    Example:
        >>> from wootz_keras import zoo
        >>> is_pruned(zoo.plain_cnn())
        False
    """
    return any(isinstance(layer, PruneWrapper) for layer in model._flatten_layers(include_self=False))
