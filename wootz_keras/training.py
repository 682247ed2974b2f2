"""Fine-tuning and evaluation: one protocol for every candidate, in every mode.

`Protocol` fixes, before any result is seen, how a candidate network is
fine-tuned: a step budget, a learning-rate schedule, an evaluation every
`eval_every` steps on a validation split (never the test split), and three
ways to stop -- the objective's target is met (the candidate wins), the
validation metric stopped improving (`patience` evaluations without a new
best), or the budget is spent. Default-pruned and block-composed candidates
go through exactly the same protocol.

Noise. A target decided on a small validation split is decided by noise: at
accuracy p on n images the standard error is sqrt(p (1 - p) / n), about one
point for 1,000 images at p = 0.9. Decisions are therefore taken on a
validation split of >= p (1 - p) / 0.005^2 images (3,600 at p = 0.9), which
keeps the standard error at the target <= 0.5 points;
`required_validation_size` computes it and `fine_tune` warns when the split
is smaller. For large splits, `Protocol.screen` looks at the first `screen`
examples first and completes the split only near the target.

Example:
    >>> from wootz_keras import zoo, data
    >>> import wootz_keras as wz
    >>> x, y = data.load_fashion_mnist("train", limit=512)
    >>> net = wz.prune_compact(zoo.resnet_cifar(depth=8, width=8), rate=0.5)
    >>> result = fine_tune(net, (x[:384], y[:384]), (x[384:], y[384:]),
    ...                    Protocol(max_steps=4, eval_every=2, batch_size=32))
    >>> result.stop, result.steps, [p["step"] for p in result.curve]
    ('budget', 4, [0, 2, 4])
"""

import dataclasses
import math
import time
import warnings

import keras
import numpy as np

SCHEDULES = ("cosine", "constant")
STOPS = ("met", "plateau", "budget")


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"protocol {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How every candidate is fine-tuned (see the module docstring).

    max_steps: step budget; eval_every: steps between evaluations (one more
    at step 0 gives the accuracy right after assembly); patience: evaluations
    without a new best (by more than `min_delta`) before a plateau stop;
    learning_rate, schedule ("cosine": decays to 0 over `max_steps`, after
    `warmup_steps` of linear warm-up; "constant"), batch_size, optimizer Adam;
    screen: None (default) evaluates the whole validation split every time,
    so every evaluation can decide any target (the run can be replayed for
    other targets); an integer screens that many examples first and
    completes the split only when the screened value is within `confidence`
    standard errors of the target (cheaper for large splits).

    Example:
        >>> Protocol(max_steps=300, eval_every=50).evaluations
        7
    """
    max_steps: int = 600
    eval_every: int = 50
    patience: int = 3
    min_delta: float = 0.0
    learning_rate: float = 5e-4
    schedule: str = "cosine"
    warmup_steps: int = 0
    batch_size: int = 64
    screen: int = None
    confidence: float = 2.0

    def __post_init__(self):
        _check_int("max_steps", self.max_steps, 0)
        _check_int("eval_every", self.eval_every, 1)
        _check_int("patience", self.patience, 1)
        _check_int("warmup_steps", self.warmup_steps, 0)
        _check_int("batch_size", self.batch_size, 1)
        if self.screen is not None:
            _check_int("screen", self.screen, 1)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"protocol schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("learning_rate", "confidence", "min_delta"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"protocol {name} must be a non-negative number, got {v!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"protocol learning_rate must be positive, got {self.learning_rate}")

    @property
    def evaluations(self):
        """Evaluations a candidate that runs to the budget gets (step 0 included)."""
        return 1 + math.ceil(self.max_steps / self.eval_every)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown protocol settings {unknown}; known: {sorted(names)}")
        return cls(**d)

    def learning_rate_schedule(self):
        """The Keras learning-rate schedule (or float) this protocol trains with."""
        if self.schedule == "constant" or self.max_steps == 0:
            return float(self.learning_rate)
        decay = max(1, self.max_steps - self.warmup_steps)
        if self.warmup_steps:
            return keras.optimizers.schedules.CosineDecay(
                0.0, decay, warmup_target=float(self.learning_rate),
                warmup_steps=self.warmup_steps)
        return keras.optimizers.schedules.CosineDecay(float(self.learning_rate), decay)


def standard_error(p, n):
    """Standard error of an accuracy `p` measured on `n` examples.

    Example:
        >>> round(standard_error(0.9, 3600), 4)
        0.005
    """
    p = min(max(float(p), 0.0), 1.0)
    return math.sqrt(p * (1 - p) / max(int(n), 1))


def required_validation_size(target, max_error=0.005):
    """Validation examples needed for a standard error <= `max_error` at `target`.

    Example:
        >>> required_validation_size(0.9)
        3600
    """
    p = min(max(float(target), 0.0), 1.0)
    return int(math.ceil(p * (1 - p) / max_error ** 2 - 1e-9))


# -- data --------------------------------------------------------------------

def _is_tf_dataset(data):
    return type(data).__module__.startswith("tensorflow") and hasattr(data, "element_spec")


def _is_split(data):
    """A `wootz_keras.data.Split` (duck-typed: this module sits below data/)."""
    return hasattr(data, "batches") and hasattr(data, "numpy") and hasattr(data, "count")


def _arrays(data, what):
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (np.asarray(a) for a in data)
        if len(x) != len(y):
            raise ValueError(f"{what}: {len(x)} inputs but {len(y)} labels")
        if not len(x):
            raise ValueError(f"{what} is empty")
        return x, y
    return None


def materialize(data, what="data", limit=None):
    """(x, y) arrays from arrays, a `data.Split`, a batched tf.data.Dataset or a PyDataset.

    Used for validation and test splits (held in memory for fast repeated
    evaluation); training data is streamed by `batches`.

    Example:
        >>> x, y = materialize((np.zeros((3, 2)), np.arange(3)))
        >>> x.shape
        (3, 2)
    """
    arrays = _arrays(data, what)
    if arrays is not None:
        x, y = arrays
        return (x[:limit], y[:limit]) if limit else (x, y)
    if _is_split(data):
        return data.numpy(limit)
    xs, ys, n = [], [], 0
    if _is_tf_dataset(data):
        source = data.as_numpy_iterator()
    elif isinstance(data, keras.utils.PyDataset):
        source = (data[i] for i in range(len(data)))
    else:
        raise ValueError(f"{what} must be (x, y) arrays, a batched tf.data.Dataset of (x, y) or "
                         f"a keras.utils.PyDataset, got {type(data).__name__}")
    for batch in source:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError(f"{what}: batches must be (x, y) pairs, got {type(batch).__name__}")
        x, y = np.asarray(batch[0]), np.asarray(batch[1])
        xs.append(x)
        ys.append(y)
        n += len(x)
        if limit and n >= limit:
            break
    if not xs:
        raise ValueError(f"{what} is empty")
    x, y = np.concatenate(xs), np.concatenate(ys)
    return (x[:limit], y[:limit]) if limit else (x, y)


def batches(data, batch_size, seed=0, what="training data"):
    """An endless iterator of (x, y) training batches, seeded.

    Arrays are sampled with a seeded permutation per pass; a tf.data.Dataset
    (already batched) is repeated; a PyDataset is cycled in a seeded order.
    The same seed gives the same batches in any process.

    Example:
        >>> it = batches((np.arange(10)[:, None], np.arange(10)), batch_size=4, seed=1)
        >>> next(it)[0].shape
        (4, 1)
    """
    arrays = _arrays(data, what)
    rng = np.random.default_rng(seed)
    if _is_split(data):
        for batch in data.batches(batch_size, shuffle=True, repeat=True,
                                  seed=seed).as_numpy_iterator():
            yield batch[0], batch[1]
    elif arrays is not None:
        x, y = arrays
        while True:
            order = rng.permutation(len(x))
            for i in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1,
                           batch_size):
                idx = np.sort(order[i:i + batch_size])
                yield x[idx], y[idx]
    elif _is_tf_dataset(data):
        for batch in data.repeat().as_numpy_iterator():
            yield batch[0], batch[1]
    elif isinstance(data, keras.utils.PyDataset):
        if not len(data):
            raise ValueError(f"{what} (PyDataset) is empty")
        while True:
            for i in rng.permutation(len(data)):
                batch = data[int(i)]
                yield batch[0], batch[1]
    else:
        raise ValueError(f"{what} must be (x, y) arrays, a batched tf.data.Dataset of (x, y) or "
                         f"a keras.utils.PyDataset, got {type(data).__name__}")


# -- metrics -----------------------------------------------------------------

def default_metric(labels=None):
    """Top-1 accuracy for sparse labels (default) or one-hot labels."""
    if labels is not None and np.ndim(labels) > 1 and np.shape(labels)[-1] > 1:
        return keras.metrics.CategoricalAccuracy(name="accuracy")
    return keras.metrics.SparseCategoricalAccuracy(name="accuracy")


def default_loss(model, labels=None):
    """Cross-entropy matching the labels, from logits unless the model ends in a softmax."""
    from_logits = not _ends_in_softmax(model)
    if labels is not None and np.ndim(labels) > 1 and np.shape(labels)[-1] > 1:
        return keras.losses.CategoricalCrossentropy(from_logits=from_logits)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


def _ends_in_softmax(model):
    last = model.layers[-1] if getattr(model, "layers", None) else None
    if isinstance(last, keras.layers.Softmax):
        return True
    return getattr(getattr(last, "activation", None), "__name__", "") == "softmax"


def _fresh(metric):
    """A new, empty copy of a Keras metric (or the metric made from a name)."""
    if isinstance(metric, str):
        return keras.metrics.get(metric)
    return type(metric).from_config(metric.get_config())


class Evaluator:
    """Measures one metric of a model on a validation or test split held in memory.

    `evaluate(model)` returns the metric over the whole split;
    `screen(model)` / `rest(...)` split one evaluation in two so a decision
    can stop after the first `screen` examples (see `fine_tune`).

    Example:
        >>> from wootz_keras import zoo, data
        >>> ev = Evaluator(data.load_fashion_mnist("test", limit=100))
        >>> 0.0 <= ev.evaluate(zoo.plain_cnn()) <= 1.0
        True
    """

    def __init__(self, data, metric=None, batch_size=500, what="validation data"):
        self.x, self.y = materialize(data, what)
        self.metric = metric if metric is not None else default_metric(self.y)
        self.batch_size = int(batch_size)
        self.what = what

    def __len__(self):
        return len(self.y)

    def _predictor(self, model):
        """A compiled forward pass of `model`, kept while the same model is evaluated
        (one trace per candidate, not one per evaluation)."""
        cached = getattr(self, "_cached", None)
        if cached is not None and cached[0]() is model:
            return cached[1]
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf
            fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        else:
            def fn(x):
                return model(x, training=False)
        import weakref
        self._cached = (weakref.ref(model), fn)
        return fn

    def _feed(self, predict, metric, start, stop):
        for i in range(start, stop, self.batch_size):
            j = min(i + self.batch_size, stop)
            metric.update_state(self.y[i:j], keras.ops.convert_to_numpy(predict(self.x[i:j])))

    def evaluate(self, model, limit=None):
        """The metric over the first `limit` examples (all by default)."""
        metric = _fresh(self.metric)
        self._feed(self._predictor(model), metric, 0, min(limit or len(self), len(self)))
        return float(keras.ops.convert_to_numpy(metric.result()))

    def start(self, model):
        """An `Evaluation` of `model`: `.screen(n)` then optionally `.complete()`."""
        return _Evaluation(self, self._predictor(model))


class _Evaluation:
    def __init__(self, evaluator, predict):
        self.ev, self.predict = evaluator, predict
        self.metric = _fresh(evaluator.metric)
        self.seen = 0

    def screen(self, n):
        n = min(n, len(self.ev))
        self.ev._feed(self.predict, self.metric, self.seen, n)
        self.seen = max(self.seen, n)
        return float(keras.ops.convert_to_numpy(self.metric.result()))

    def complete(self):
        return self.screen(len(self.ev))


# -- fine-tuning ---------------------------------------------------------------

@dataclasses.dataclass
class FineTuneResult:
    """What fine-tuning one candidate did.

    curve: one dict per evaluation: step, screen (metric on the screened
    examples), full (metric on the whole validation split, when computed),
    t (seconds since fine-tuning began, this evaluation included);
    stop: "met", "plateau" or "budget"; steps: training steps run;
    init: the screened metric at step 0 (right after assembly); final: the
    metric on the whole validation split of the weights kept (the meeting
    evaluation, or the best one); seconds: trace (graph building and the
    first step), train (the other steps), evaluate.
    """
    curve: list
    stop: str
    steps: int
    init: float
    final: float
    seconds: dict

    def to_dict(self):
        return dataclasses.asdict(self)


class _Trainer:
    """One training step for `model`: a tf.function on TensorFlow, Keras'
    train_on_batch on other backends."""

    def __init__(self, model, loss, protocol):
        self.model = model
        self.optimizer = keras.optimizers.Adam(protocol.learning_rate_schedule())
        self.loss = loss
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf
            variables = model.trainable_variables
            self.optimizer.build(variables)

            @tf.function(reduce_retracing=True)
            def step(x, y):
                with tf.GradientTape() as tape:
                    value = loss(y, model(x, training=True))
                    if model.losses:
                        value = value + tf.add_n(model.losses)
                self.optimizer.apply(tape.gradient(value, variables), variables)
                return value

            self._step = step
        else:
            model.compile(self.optimizer, loss)
            self._step = lambda x, y: model.train_on_batch(x, y)

    def __call__(self, x, y):
        return self._step(x, y)


def check_validation_size(size, target, what="validation data"):
    """Warn when `size` examples cannot decide `target` within 0.5 points."""
    need = required_validation_size(target)
    if size < need:
        warnings.warn(f"{what} holds {size} examples; deciding target {target:.4f} within 0.5 "
                      f"points (one standard error) needs {need}", stacklevel=3)


def fine_tune(model, train, val, protocol, target=None, *, loss=None, metric=None, seed=0,
              evaluator=None, verbose=False, check_split=True):
    """Fine-tune `model` in place under `protocol`; return a `FineTuneResult`.

    train: (x, y) arrays, a batched tf.data.Dataset or a PyDataset (streamed);
    val: the validation split (held in memory) or an `Evaluator` of it;
    target: the metric value that ends fine-tuning at once (None: run to a
    plateau or the budget); loss / metric: Keras loss and metric (default:
    cross-entropy and top-1 accuracy, sparse or one-hot from the labels);
    seed: the same seed gives the same batches (a candidate gets the same
    batches in every mode). The weights kept are those of the meeting
    evaluation, or of the best one.
    """
    if not isinstance(protocol, Protocol):
        raise ValueError(f"protocol must be a Protocol, got {type(protocol).__name__}")
    ev = evaluator or (val if isinstance(val, Evaluator) else Evaluator(val, metric))
    if target is not None and check_split:
        check_validation_size(len(ev), target, ev.what)
    keras.utils.set_random_seed(seed)
    it = batches(train, protocol.batch_size, seed=seed)
    loss = loss or default_loss(model)
    seconds = {"trace": 0.0, "train": 0.0, "evaluate": 0.0}
    curve, best, best_weights, since = [], -math.inf, None, 0
    trainer = None
    step, stop = 0, None
    started = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        point, met = _evaluate_point(ev, model, step, protocol, target)
        seconds["evaluate"] += time.perf_counter() - t0
        point["t"] = round(time.perf_counter() - started, 4)
        curve.append(point)
        if verbose:
            print(f"  step {step}: {point}")
        if met:
            stop = "met"
            break
        if point["screen"] > best + protocol.min_delta:
            best, best_weights, since = point["screen"], model.get_weights(), 0
        else:
            since += 1
            if since >= protocol.patience:
                stop = "plateau"
                break
        if step >= protocol.max_steps:
            stop = "budget"
            break
        n = min(protocol.eval_every, protocol.max_steps - step)
        if trainer is None:
            t0 = time.perf_counter()
            trainer = _Trainer(model, loss, protocol)
            trainer(*next(it))
            seconds["trace"] += time.perf_counter() - t0
            step, n = step + 1, n - 1
        t0 = time.perf_counter()
        for _ in range(n):
            trainer(*next(it))
        if n and keras.backend.backend() == "tensorflow":
            model.trainable_variables[0].numpy()      # wait for the last step
        seconds["train"] += time.perf_counter() - t0
        step += n
    if stop == "met":
        final = curve[-1]["full"]
    else:
        if best_weights is not None and best > curve[-1]["screen"]:
            model.set_weights(best_weights)
        best_point = max(curve, key=lambda p: p["screen"])
        t0 = time.perf_counter()
        final = best_point["full"] if best_point["full"] is not None else ev.evaluate(model)
        seconds["evaluate"] += time.perf_counter() - t0
    return FineTuneResult(curve=curve, stop=stop, steps=step, init=curve[0]["screen"],
                          final=float(final), seconds={k: round(v, 4) for k, v in seconds.items()})


def _evaluate_point(ev, model, step, protocol, target):
    run = ev.start(model)
    if protocol.screen is None:
        full = run.complete()
        point = {"step": int(step), "screen": round(full, 6), "full": round(full, 6)}
        return point, target is not None and full >= target - 1e-9
    screened = run.screen(protocol.screen)
    point = {"step": int(step), "screen": round(screened, 6), "full": None}
    if target is None:
        return point, False
    n = min(protocol.screen, len(ev))
    margin = protocol.confidence * standard_error(target, n)
    if n >= len(ev) or screened >= target - margin:
        full = run.complete()
        point["full"] = round(full, 6)
        return point, full >= target - 1e-9
    return point, False


def evaluate(model, data, metric=None):
    """`metric` (default top-1 accuracy) of `model` on `data` ((x, y) arrays,
    a batched tf.data.Dataset or a PyDataset).

    Example:
        >>> from wootz_keras import zoo, data
        >>> 0.0 <= evaluate(zoo.plain_cnn(), data.load_fashion_mnist("test", limit=64)) <= 1.0
        True
    """
    return Evaluator(data, metric).evaluate(model)


def accuracy(model, data):
    """Top-1 accuracy of `model` on real `(images, labels)`.

    Example:
        >>> from wootz_keras import zoo, data
        >>> x, y = data.load_fashion_mnist("test", limit=64)
        >>> 0.0 <= accuracy(zoo.plain_cnn(), (x, y)) <= 1.0
        True
    """
    return evaluate(model, data)
