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
    `mask_output=False` keeps the mask (it still says which channels are
    pruned, for `strip_pruning` and schedules) but skips the multiply:
    `prune_filters` sets it where every consumer is a masked per-channel layer
    (e.g. Conv -> BatchNormalization), whose own mask zeroes those channels
    anyway, so training pays for one multiply per channel set, not two.
    `axis` is the output axis holding the channels (-1, or -3 for a
    channels_first 2D layer). `mask_input=True` (normalisation layers) computes
    the layer as if the masked channels were absent, so its statistics count
    the kept channels only (the layer class's `masked_call`, see ChannelRule).

    Example:
        >>> layer = PruneWrapper(keras.layers.Dense(4), rate=0.5)
        >>> tuple(layer(ops.ones((1, 3))).shape)
        (1, 4)
    """

    _wootz_wrapper = True

    def __init__(self, layer, rate=0.0, schedule=None, mask_output=True, axis=-1,
                 mask_input=False, **kwargs):
        kwargs.setdefault("name", layer.name)
        super().__init__(layer, **kwargs)
        self.rate = float(rate)
        self.mask_output = bool(mask_output)
        self.axis = int(axis)
        if self.axis >= 0:
            raise ValueError(f"PruneWrapper axis counts from the end (-1, -3, ...), got {axis}")
        self.mask_input = bool(mask_input)
        self._masked_call = None
        if self.mask_input:
            from wootz_keras.graph.channel_rules import masked_call_for
            self._masked_call = masked_call_for(layer)
            if self._masked_call is None:
                raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has no masked "
                                 "call for mask_input=True")
        self.schedule = deserialize_schedule(schedule) if isinstance(schedule, dict) else schedule

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        channels = self.compute_output_shape(input_shape)[self.axis]
        self.mask = self.add_weight(name="mask", shape=(channels,), initializer="ones",
                                    trainable=False)
        self.pruning_step = None        # a step counter only where a schedule needs one
        if self.schedule is not None:
            self.pruning_step = self.add_weight(name="pruning_step", shape=(), dtype="int64",
                                                initializer="zeros", trainable=False)
        self.built = True

    def _broadcast_mask(self, dtype):
        mask = ops.cast(self.mask, dtype)
        if self.axis == -1:
            return mask
        return ops.reshape(mask, (-1,) + (1,) * (-self.axis - 1))

    def call(self, inputs, training=None):
        if self._masked_call is not None:
            rank = len(inputs.shape)
            return self._masked_call(self.layer, inputs, self.mask, rank + self.axis)
        outputs = self.layer(inputs, training=training)
        if not self.mask_output:
            return outputs
        return outputs * self._broadcast_mask(outputs.dtype)

    def compute_output_shape(self, input_shape):
        try:
            return self.layer.compute_output_shape(input_shape)
        except NotImplementedError:     # custom layers often only define call()
            return self.layer.compute_output_spec(keras.KerasTensor(input_shape)).shape

    def load_own_variables(self, store):
        """Also reads wrappers saved with a step counter but no schedule
        (earlier versions kept one in every wrapper): the counter is dropped."""
        own = self._trainable_variables + self._non_trainable_variables
        if self.pruning_step is None and len(store.keys()) == len(own) + 1:
            for i, v in enumerate(own):
                v.assign(store[f"{i}"])
            return
        super().load_own_variables(store)

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, schedule=serialize_schedule(self.schedule),
                      mask_output=self.mask_output, axis=self.axis, mask_input=self.mask_input)
        return config


def is_pruned(model):
    """True if any layer of `model` (nested models included) is a PruneWrapper.

    Example:
        >>> from wootz_keras import zoo
        >>> is_pruned(zoo.plain_cnn())
        False
    """
    return any(isinstance(layer, PruneWrapper) for layer in model._flatten_layers(include_self=False))
