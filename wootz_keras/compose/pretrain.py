"""Multiplexed teacher-student pre-training of tuning blocks (docs/method.md step 4).

One teacher forward pass per batch feeds every student block of a group:
each student reads the teacher's activation entering its first module and
learns to reproduce the activation leaving its last module (MSE). On the
TensorFlow backend a custom training loop runs under any tf.distribute
strategy (Keras `fit` fails under MultiWorkerMirroredStrategy, see
docs/design.md); other Keras backends (e.g. JAX on a GPU) `fit` the same model.
"""

import time

import keras
import numpy as np

from wootz_keras.compose.assemble import Assembler, copy_model
from wootz_keras.compose.blocks import PretrainedBlocks, check_plan_matches
from wootz_keras.training import batches
from wootz_keras.utils.progress import Progress


@keras.saving.register_keras_serializable("wootz_keras")
class BlockMSE(keras.layers.Layer):
    """Per-example mean squared error between a student's output and the
    teacher's activation (the target gets no gradient)."""

    def call(self, prediction, target):
        err = keras.ops.square(prediction - keras.ops.stop_gradient(target))
        return keras.ops.mean(keras.ops.reshape(err, (keras.ops.shape(err)[0], -1)), axis=1,
                              keepdims=True)


class Multiplexer:
    """The multiplexing model: ONE Keras model in which the frozen teacher
    runs once and every student block of a group reads the teacher's
    activation at its input; it outputs each block's per-example MSE against
    the teacher's activation at its output, shape (batch, blocks)."""

    def __init__(self, teacher, assembler, blocks):
        modules = assembler.modules
        names = []
        for b in blocks:
            for n in (modules[b.start].input_layer, modules[b.stop - 1].output_layer):
                if n not in names:
                    names.append(n)
        self.blocks = list(blocks)
        self.students = [assembler.student(b.start, b.rates) for b in self.blocks]
        for student in self.students:
            student.trainable = True
        outputs = [teacher.get_layer(n).output if n else teacher.inputs[0] for n in names]
        features = keras.Model(teacher.inputs, outputs, name="teacher_features")
        features.trainable = False          # frozen: BatchNorm runs in inference mode
        index = {n: i for i, n in enumerate(names)}
        image = keras.Input(teacher.input_shape[1:], name="image")
        acts = features(image)
        acts = acts if isinstance(acts, (list, tuple)) else [acts]
        errors = []
        for student, b in zip(self.students, self.blocks):
            i = index[modules[b.start].input_layer]
            o = index[modules[b.stop - 1].output_layer]
            errors.append(BlockMSE(name=f"mse_{len(errors)}")(student(acts[i]), acts[o]))
        out = errors[0] if len(errors) == 1 else keras.layers.Concatenate(name="mse")(errors)
        self.model = keras.Model(image, out, name="multiplexer")


def pretrain_blocks(teacher, plan, dataset, steps=200, strategy=None, learning_rate=1e-3,
                    modules=None, log_dir=None, verbose=1, batch_size=64, seed=0):
    """Pre-train every block of `plan` teacher-student, group by group.

    dataset: real training images, as an array, an `(images, labels)` pair,
    a `wootz_keras.data.Split`, a batched tf.data.Dataset of images or of
    (images, labels), or a keras.utils.PyDataset; it is repeated as needed
    (labels are ignored). strategy: a tf.distribute strategy (TensorFlow backend; default:
    the current one); other Keras backends train the same multiplexing
    model with `fit`. Returns PretrainedBlocks with the weights of every
    block keyed by layer name, and the seconds it took.

    Example:
        >>> from wootz_keras import zoo, data
        >>> from wootz_keras.planner import plan_tuning_blocks
        >>> teacher = zoo.resnet_cifar(depth=8)
        >>> plan = plan_tuning_blocks([[0.3, 0.5, 0.5], [0.3, 0.5, 0.7]])
        >>> x, y = data.load_fashion_mnist("test", limit=64)
        >>> blocks = pretrain_blocks(teacher, plan, x, steps=2, batch_size=32, verbose=0)
    """
    assembler = Assembler(teacher, modules)
    modules = assembler.modules
    check_plan_matches(modules, plan)
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    tf_backend = keras.backend.backend() == "tensorflow"
    if strategy is not None and not tf_backend:
        raise ValueError(f"strategy= needs the TensorFlow backend, not {keras.backend.backend()!r}")
    groups = getattr(plan, "groups", None) or [list(range(len(plan.blocks)))]
    result = PretrainedBlocks(modules.fingerprint(), steps=steps)
    started = time.perf_counter()
    for g, group in enumerate(groups):
        blocks = [plan.blocks[i] for i in group]
        if not blocks:
            continue
        title = f"pre-training group {g + 1}/{len(groups)} ({len(blocks)} blocks)"
        if tf_backend:
            losses, students = _train_distributed(teacher, assembler, blocks, dataset, steps,
                                                  strategy, learning_rate, batch_size, seed,
                                                  log_dir, verbose, title)
        else:
            losses, students = _train_fit(teacher, assembler, blocks, dataset, steps,
                                          learning_rate, batch_size, seed, verbose)
        for block, student, loss in zip(blocks, students, losses):
            result.add(block, _student_weights(student), float(loss))
    result.seconds = time.perf_counter() - started
    return result


def _student_weights(student):
    return {layer.name: layer.get_weights() for layer in student.layers
            if layer.weights and not isinstance(layer, keras.layers.InputLayer)}


def _image_batches(dataset, batch_size, seed):
    """An endless iterator of image batches (labels, if any, dropped)."""
    if hasattr(dataset, "batches") and hasattr(dataset, "numpy"):      # a data.Split
        pass
    elif isinstance(dataset, np.ndarray) or (isinstance(dataset, (tuple, list))
                                             and len(dataset) == 2):
        x = np.asarray(dataset[0] if isinstance(dataset, (tuple, list)) else dataset)
        if x.ndim < 2:
            raise ValueError("dataset must be images, an (images, labels) pair, a tf.data.Dataset "
                             "or a keras.utils.PyDataset")
        dataset = (x, np.zeros(len(x), np.int8))
    elif type(dataset).__module__.startswith("tensorflow"):
        dataset = dataset.map(lambda *b: (b[0], 0))
    return (b[0] for b in batches(dataset, batch_size, seed=seed, what="pre-training data"))


def _train_fit(teacher, assembler, blocks, dataset, steps, learning_rate, batch_size, seed,
               verbose):
    """Any Keras backend: `fit` the multiplexing model on seeded batches."""
    it = _image_batches(dataset, batch_size, seed)
    mux = Multiplexer(copy_model(teacher), assembler, blocks)
    mux.model.compile(keras.optimizers.Adam(learning_rate),
                      loss=lambda _, per_block: keras.ops.sum(per_block, axis=-1))
    last = None

    def feed():
        nonlocal last
        while True:
            last = next(it)
            yield last, np.zeros((len(last), 1), "float32")

    mux.model.fit(feed(), steps_per_epoch=steps, epochs=1, verbose=2 if verbose else 0)
    return np.mean(keras.ops.convert_to_numpy(mux.model(last, training=False)), axis=0), mux.students


def _train_distributed(teacher, assembler, blocks, dataset, steps, strategy, learning_rate,
                       batch_size, seed, log_dir, verbose, title):
    """TensorFlow backend: a custom loop under a tf.distribute strategy
    (Keras `fit` fails under MultiWorkerMirroredStrategy)."""
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    if hasattr(dataset, "batches") and hasattr(dataset, "numpy"):      # a data.Split
        dataset = dataset.batches(batch_size, shuffle=True, seed=seed)
    if isinstance(dataset, tf.data.Dataset):
        images = dataset.map(lambda *b: b[0]).repeat()
    elif isinstance(dataset, keras.utils.PyDataset):
        first = np.asarray(dataset[0][0])
        images = tf.data.Dataset.from_generator(
            lambda: _image_batches(dataset, batch_size, seed),
            output_signature=tf.TensorSpec((None, *first.shape[1:]), first.dtype))
    else:
        x = np.asarray(dataset[0] if isinstance(dataset, (tuple, list)) else dataset)
        images = tf.data.Dataset.from_tensor_slices(x).shuffle(
            min(len(x), 10_000), seed=seed).batch(batch_size).repeat()
    with strategy.scope():
        mux = Multiplexer(copy_model(teacher), assembler, blocks)
        optimizer = keras.optimizers.Adam(learning_rate)
        variables = mux.model.trainable_variables
        optimizer.build(variables)
    dist = strategy.experimental_distribute_dataset(images)
    replicas = strategy.num_replicas_in_sync

    def replica_step(x):
        with tf.GradientTape() as tape:
            per_block = mux.model(x, training=True)          # (batch, blocks)
            batch = tf.cast(tf.shape(x)[0] * replicas, tf.float32)
            total = tf.reduce_sum(per_block) / batch
        optimizer.apply(tape.gradient(total, variables), variables)
        return tf.reduce_sum(per_block, axis=0) / batch

    @tf.function
    def step(x):
        per_replica = strategy.run(replica_step, args=(x,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    writer = tf.summary.create_file_writer(log_dir) if log_dir else None
    bar = Progress(steps, title, verbose=bool(verbose))
    it = iter(dist)
    last = np.zeros(len(blocks))
    for i in range(steps):
        last = step(next(it)).numpy()
        bar.update(i + 1, loss=float(last.sum()))
        if writer and (i % 10 == 0 or i == steps - 1):
            with writer.as_default(step=i):
                tf.summary.scalar("pretrain/total_mse", float(last.sum()))
                for block, v in zip(blocks, last):
                    tf.summary.scalar(f"pretrain/{block.name}", float(v))
    bar.close()
    _average_replica_statistics(strategy, mux.students)
    return last, mux.students


def _average_replica_statistics(strategy, students):
    """Make every replica's BatchNorm moving statistics the replicas' mean.

    Keras 3 creates moving_mean/moving_variance with aggregation "none", so
    under a multi-replica strategy (MultiWorkerMirroredStrategy, several
    GPUs) each replica updates only its own copy from its own shard, and
    workers would save different block weights. The update is linear, so
    averaging once at the end equals averaging after every step.
    """
    import tensorflow as tf

    variables = [v for s in students for v in s.non_trainable_variables
                 if v.dtype in ("float16", "bfloat16", "float32", "float64")]
    if strategy.num_replicas_in_sync <= 1 or not variables:
        return

    def replica_fn():
        ctx = tf.distribute.get_replica_context()
        means = ctx.all_reduce(tf.distribute.ReduceOp.MEAN,
                               [tf.identity(v.value) for v in variables])
        for v, m in zip(variables, means):
            v.assign(m)

    tf.function(lambda: strategy.run(replica_fn))()
