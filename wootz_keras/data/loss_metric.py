"""The loss to train with and the metric to select by ("higher is better").

Order: the model's compiled loss / metrics, else the names given (--loss,
--metric), else sparse categorical cross-entropy and accuracy. Names are any
Keras loss / metric name; sparse and one-hot labels both work: the loss and
metric are switched to their sparse / categorical twin to match the labels,
and where a metric has no sparse form (auc, precision, f1_score, ...) the
labels are one-hot encoded (`TrainingSpec.adapt`).
"""

import dataclasses
import inspect

import numpy as np

from wootz_keras.data.errors import DataError
from wootz_keras.data.models import ends_in_softmax

DEFAULT_LOSS = "sparse_categorical_crossentropy"
DEFAULT_METRIC = "accuracy"
METRIC_EXAMPLES = "accuracy, top_k_categorical_accuracy, auc, precision, recall, f1_score"


@dataclasses.dataclass
class TrainingSpec:
    """How to train and compare classifiers of one model.

    Attributes:
        loss: a Keras loss (object, or a custom function) for `label_format` labels.
        metric: a Keras metric object, higher is better (use `new_metric()`
            for each model compiled: metrics hold state).
        metric_name: its name (e.g. "accuracy", for journals and reports).
        from_logits: the model outputs logits (no softmax at its end).
        label_format: the labels the loss and metric take, "sparse" or "one_hot".
        num_classes: the model's outputs.
        loss_origin, metric_origin: "compiled", "given" or "default".
    """
    loss: object
    metric: object
    metric_name: str
    from_logits: bool
    label_format: str
    num_classes: int
    loss_origin: str
    metric_origin: str

    def new_metric(self):
        """A fresh copy of `metric` (same configuration, no state)."""
        m = self.metric
        return type(m).from_config(m.get_config()) if hasattr(m, "get_config") else m

    def compile(self, model, optimizer="adam", **kwargs):
        """`model.compile` with this loss and a fresh metric; returns `model`.

        Example:
            >>> from wootz_keras.zoo import plain_cnn
            >>> model = training_spec(plain_cnn()).compile(plain_cnn())
            >>> model.compiled
            True
        """
        model.compile(optimizer=optimizer, loss=self.loss, metrics=[self.new_metric()], **kwargs)
        return model

    def adapt(self, data):
        """`data` with labels in `label_format`: a batched tf.data.Dataset of
        `(x, y)` (mapped lazily) or `(x, y)` arrays.

        Example:
            >>> from wootz_keras.zoo import plain_cnn
            >>> spec = training_spec(plain_cnn(), metric="auc")
            >>> x, y = spec.adapt((np.zeros((2, 28, 28, 1)), np.array([3, 1])))
            >>> spec.label_format, y.shape
            ('one_hot', (2, 10))
        """
        one_hot = self.label_format == "one_hot"
        k = self.num_classes
        if isinstance(data, (tuple, list)) and len(data) == 2:
            x, y = data
            y = np.asarray(y)
            sparse = y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)
            if one_hot and sparse:
                y = np.eye(k, dtype=np.float32)[y.reshape(-1).astype(np.int64)]
            elif not one_hot and not sparse:
                y = np.argmax(y, axis=-1).astype(np.int64)
            return x, y
        import tensorflow as tf
        y_spec = data.element_spec[1]
        sparse = y_spec.shape.rank <= 1 or y_spec.shape[-1] == 1
        if one_hot and sparse:
            return data.map(lambda x, y: (x, tf.one_hot(tf.reshape(tf.cast(y, tf.int32), [-1]), k)))
        if not one_hot and not sparse:
            return data.map(lambda x, y: (x, tf.argmax(y, axis=-1)))
        return data


def training_spec(model, loss=None, metric=None, label_format="sparse",
                  what=("--loss", "--metric")):
    """The `TrainingSpec` of `model` for labels in `label_format`.

    Uses the model's compiled loss and first higher-is-better compiled
    metric when it has them, else `loss` / `metric` (Keras names or
    objects), else sparse categorical cross-entropy and accuracy. A loss
    given by name gets `from_logits` from the model (a softmax last layer
    means probabilities). Unknown names, lower-is-better metrics (mse, ...),
    and threshold metrics (precision, recall) on a model that outputs
    logits are DataErrors naming `what`.

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> spec = training_spec(plain_cnn(), metric="top_k_categorical_accuracy")
        >>> type(spec.metric).__name__, spec.metric_name, spec.label_format, spec.from_logits
        ('SparseTopKCategoricalAccuracy', 'top_k_categorical_accuracy', 'sparse', False)
    """
    import keras

    from wootz_keras.data.fit import classifier_io
    if label_format not in ("sparse", "one_hot"):
        raise ValueError(f"label_format must be 'sparse' or 'one_hot', got {label_format!r}")
    _, classes = classifier_io(model)
    from_logits = not ends_in_softmax(model)
    loss_what, metric_what = what
    compiled = model.get_compile_config() if getattr(model, "compiled", False) else {}

    loss_id, loss_origin = compiled.get("loss") and model.loss, "compiled"
    if isinstance(loss_id, (dict, list, tuple)):
        raise DataError(f"{loss_what}: the model is compiled with several losses "
                        f"({loss_id}); multi-output models are not supported")
    if not loss_id:
        loss_id, loss_origin = (loss, "given") if loss is not None else (DEFAULT_LOSS, "default")
    loss_obj, loss_needs = _loss(loss_id, from_logits, loss_what)

    metric_obj, metric_needs, metric_origin = None, None, None
    for identifier in compiled.get("metrics") or []:
        try:
            metric_obj, metric_needs = _metric(keras.metrics.deserialize(identifier)
                                               if isinstance(identifier, dict) else identifier,
                                               from_logits, metric_what, strict=False)
            metric_origin = "compiled"
            break
        except DataError:
            continue  # e.g. a lower-is-better compiled metric: not an objective
    if metric_obj is None:
        metric_id, metric_origin = ((metric, "given") if metric is not None
                                    else (DEFAULT_METRIC, "default"))
        metric_obj, metric_needs = _metric(metric_id, from_logits, metric_what, strict=True)

    needs = {loss_needs, metric_needs} - {"either"}
    fmt = "one_hot" if needs else label_format
    return TrainingSpec(loss=_loss_twin(loss_obj, fmt), metric=_metric_twin(metric_obj, fmt),
                        metric_name=metric_obj.name, from_logits=from_logits,
                        label_format=fmt, num_classes=classes, loss_origin=loss_origin,
                        metric_origin=metric_origin)


# -- losses ------------------------------------------------------------------

def _snake(name):
    import re
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _loss_classes():
    import keras
    return {_snake(name): cls for name, cls in vars(keras.losses).items()
            if inspect.isclass(cls) and issubclass(cls, keras.losses.Loss)
            and cls is not keras.losses.Loss}


def _loss(identifier, from_logits, what):
    """(loss, needs): needs is "either" (has a twin for both label formats,
    or is custom) or "one_hot"."""
    import keras
    if isinstance(identifier, keras.losses.Loss):
        obj = identifier
    else:
        try:
            resolved = keras.losses.get(identifier)
        except (ValueError, TypeError):
            raise DataError(f"{what}={identifier!r} is not a Keras loss (e.g. "
                            "sparse_categorical_crossentropy, categorical_crossentropy)") from None
        if resolved is None:
            raise DataError(f"{what}={identifier!r} is not a Keras loss")
        cls = (type(resolved) if isinstance(resolved, keras.losses.Loss)
               else _loss_classes().get(getattr(resolved, "__name__", "")))
        if cls is None:
            return resolved, "either"  # a custom loss function: used as given
        kwargs = {}
        if "from_logits" in inspect.signature(cls.__init__).parameters:
            kwargs["from_logits"] = from_logits
        obj = cls(**kwargs)
    if isinstance(obj, keras.losses.SparseCategoricalCrossentropy):
        return obj, "either"
    if isinstance(obj, keras.losses.CategoricalCrossentropy):
        smoothing = obj.get_config().get("label_smoothing", 0) or 0
        return obj, "either" if smoothing == 0 else "one_hot"
    if type(obj).__module__.startswith("keras"):
        return obj, "one_hot"  # other Keras losses compare vectors (mse, kl_divergence, ...)
    return obj, "either"


def _loss_twin(obj, fmt):
    import keras
    cfg = obj.get_config() if hasattr(obj, "get_config") else {}
    kwargs = {"from_logits": cfg.get("from_logits", False),
              "reduction": cfg.get("reduction", "sum_over_batch_size")}
    if fmt == "one_hot" and isinstance(obj, keras.losses.SparseCategoricalCrossentropy):
        return keras.losses.CategoricalCrossentropy(**kwargs)
    if fmt == "sparse" and isinstance(obj, keras.losses.CategoricalCrossentropy):
        return keras.losses.SparseCategoricalCrossentropy(**kwargs)
    return obj


# -- metrics -----------------------------------------------------------------

def _metric_sets():
    m = __import__("keras").metrics
    argmax = (m.Accuracy, m.CategoricalAccuracy, m.SparseCategoricalAccuracy,
              m.TopKCategoricalAccuracy, m.SparseTopKCategoricalAccuracy)
    threshold = (m.Precision, m.Recall, m.PrecisionAtRecall, m.RecallAtPrecision,
                 m.SensitivityAtSpecificity, m.SpecificityAtSensitivity)
    one_hot = threshold + (m.AUC, m.F1Score, m.FBetaScore, m.OneHotIoU, m.OneHotMeanIoU)
    return argmax, threshold, one_hot


def _metric(identifier, from_logits, what, strict):
    """(metric, needs) for a higher-is-better class-score metric; DataError otherwise."""
    import keras
    argmax, threshold, one_hot = _metric_sets()
    by_name = not isinstance(identifier, keras.metrics.Metric)
    try:
        obj = keras.metrics.get(identifier)
    except (ValueError, TypeError) as e:
        raise DataError(f"{what}={identifier!r} is not a Keras metric usable here ({_short(e)}); "
                        f"e.g. {METRIC_EXAMPLES}") from None
    if not isinstance(obj, keras.metrics.Metric):
        if callable(obj):  # a custom metric function: trusted to be higher-is-better
            obj = keras.metrics.MeanMetricWrapper(obj, name=getattr(obj, "__name__", "metric"))
            return obj, "either"
        raise DataError(f"{what}={identifier!r} is not a Keras metric; e.g. {METRIC_EXAMPLES}")
    if isinstance(obj, argmax):
        return obj, "either"
    if isinstance(obj, one_hot):
        if isinstance(obj, keras.metrics.AUC) and by_name:
            obj = keras.metrics.AUC(from_logits=from_logits, name=obj.name)
        f1_threshold = isinstance(obj, (keras.metrics.F1Score, keras.metrics.FBetaScore)) and (
            obj.get_config().get("threshold") is not None)
        if strict and from_logits and (isinstance(obj, threshold) or f1_threshold):
            raise DataError(f"{what}={obj.name}: thresholds need probabilities but the model "
                            "outputs logits (no softmax at its end); add a Softmax layer or use "
                            "accuracy, auc or f1_score")
        return obj, "one_hot"
    if not type(obj).__module__.startswith("keras"):
        return obj, "either"  # a user's Metric subclass: trusted to be higher-is-better
    raise DataError(f"{what}={obj.name}: {type(obj).__name__} is not a higher-is-better "
                    f"class-score metric; the objective needs one such as {METRIC_EXAMPLES}")


def _metric_twin(obj, fmt):
    import keras
    m = keras.metrics
    sparse = fmt == "sparse"
    if isinstance(obj, (m.Accuracy, m.CategoricalAccuracy, m.SparseCategoricalAccuracy)):
        cls = m.SparseCategoricalAccuracy if sparse else m.CategoricalAccuracy
        return obj if type(obj) is cls else cls(name=obj.name)
    if isinstance(obj, (m.TopKCategoricalAccuracy, m.SparseTopKCategoricalAccuracy)):
        cls = m.SparseTopKCategoricalAccuracy if sparse else m.TopKCategoricalAccuracy
        return obj if type(obj) is cls else cls(k=obj.get_config()["k"], name=obj.name)
    return obj


def _short(error):
    return " ".join(str(error).split())[:120]
