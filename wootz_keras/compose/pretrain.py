"""Multiplexed teacher-student pre-training of tuning blocks (WOOTZ.md step 4).

One teacher forward pass per batch feeds every student block of a group:
each student reads the teacher's activation entering its first module and
learns to reproduce the activation leaving its last module (MSE). A custom
training loop runs under any tf.distribute strategy (Keras `fit` fails
under MultiWorkerMirroredStrategy, see DESIGN.md).
"""

import time

import keras
import numpy as np
import tensorflow as tf

from wootz_keras.compose.blocks import (
    PretrainedBlocks, TrainedBlock, block_name, build_student, check_plan_matches)
from wootz_keras.planner.config_space import ConfigSpace
from wootz_keras.planner.modules import find_modules


def teacher_fingerprint(modules):
    """Identifies the module structure blocks were trained for."""
    return ConfigSpace(modules, rates=(0.5,)).fingerprint()


class Multiplexer:
    """The multiplexing model: a frozen teacher exposing every boundary
    activation, and the student blocks hanging off it."""

    def __init__(self, teacher, modules, specs):
        names = []
        for start, rates in specs:
            first, last = modules[start], modules[start + len(rates) - 1]
            for n in (first.input_layer, last.output_layer):
                if n not in names:
                    names.append(n)
        outputs = [teacher.get_layer(n).output if n else teacher.inputs[0] for n in names]
        self.specs = list(specs)
        self.students = [build_student(teacher, modules, s, r) for s, r in self.specs]
        for student in self.students:
            student.trainable = True
        self.features = keras.Model(teacher.inputs, outputs, name="teacher_features")
        self.features.trainable = False
        self.index = {n: i for i, n in enumerate(names)}
        self.io = [(self.index[modules[s].input_layer],
                    self.index[modules[s + len(r) - 1].output_layer]) for s, r in self.specs]

    @property
    def trainable_variables(self):
        return [v for s in self.students for v in s.trainable_variables]

    def losses(self, images):
        """Per-example MSE of every student, shape (blocks, batch)."""
        acts = self.features(images, training=False)
        acts = acts if isinstance(acts, (list, tuple)) else [acts]
        out = []
        for student, (i, o) in zip(self.students, self.io):
            pred = student(tf.stop_gradient(acts[i]), training=True)
            err = tf.square(pred - tf.stop_gradient(acts[o]))
            out.append(tf.reduce_mean(tf.reshape(err, [tf.shape(err)[0], -1]), axis=1))
        return tf.stack(out)


def pretrain_blocks(teacher, plan, dataset, steps=200, strategy=None, learning_rate=1e-3,
                    modules=None, log_dir=None, verbose=1, global_batch_size=None):
    """Pre-train every block of `plan` teacher-student, group by group.

    dataset: a tf.data.Dataset of images or (images, labels) batches (real
    data); it is repeated as needed. strategy: a tf.distribute strategy
    (default: the current one). Returns PretrainedBlocks with the weights of
    every block keyed by layer name, and the seconds it took.

    Example:
        >>> from wootz_keras import zoo, data
        >>> from wootz_keras.planner import plan_tuning_blocks
        >>> teacher = zoo.resnet_cifar(depth=8)
        >>> plan = plan_tuning_blocks([[0.3, 0.5, 0.5], [0.3, 0.5, 0.7]])
        >>> x, y = data.load_fashion_mnist("test", limit=64)
        >>> blocks = pretrain_blocks(teacher, plan, data.as_dataset(x, y, 32), steps=2, verbose=0)
    """
    strategy = strategy or tf.distribute.get_strategy()
    modules = modules or find_modules(teacher)
    check_plan_matches(modules, plan)
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    groups = getattr(plan, "groups", None) or [list(range(len(plan.blocks)))]
    result = PretrainedBlocks(teacher_fingerprint(modules), steps=steps)
    writer = tf.summary.create_file_writer(log_dir) if log_dir else None
    started = time.perf_counter()
    images = dataset.map(lambda *b: b[0]).repeat()
    for g, group in enumerate(groups):
        specs = [(plan.blocks[i].start, tuple(plan.blocks[i].rates)) for i in group]
        if not specs:
            continue
        with strategy.scope():
            mux = Multiplexer(_copy(teacher), modules, specs)
            optimizer = keras.optimizers.Adam(learning_rate)
            optimizer.build(mux.trainable_variables)
        losses = _train(mux, optimizer, strategy, images, steps, global_batch_size,
                        writer, verbose, f"group {g + 1}/{len(groups)} ({len(specs)} blocks)")
        for (start, rates), student, loss in zip(specs, mux.students, losses):
            result.add(TrainedBlock(start, rates, _student_weights(student), float(loss)))
    result.seconds = time.perf_counter() - started
    return result


def _copy(model):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _student_weights(student):
    return {layer.name: layer.get_weights() for layer in student.layers
            if layer.weights and not isinstance(layer, keras.layers.InputLayer)}


def _train(mux, optimizer, strategy, images, steps, global_batch_size, writer, verbose, title):
    dist = strategy.experimental_distribute_dataset(images)
    variables = mux.trainable_variables
    replicas = strategy.num_replicas_in_sync

    def replica_step(x):
        with tf.GradientTape() as tape:
            per_block = mux.losses(x)                     # (blocks, batch)
            batch = global_batch_size or tf.shape(x)[0] * replicas
            total = tf.reduce_sum(per_block) / tf.cast(batch, tf.float32)
        grads = tape.gradient(total, variables)
        optimizer.apply(grads, variables)
        return tf.reduce_sum(per_block, axis=1) / tf.cast(batch, tf.float32)

    @tf.function
    def step(x):
        per_replica = strategy.run(replica_step, args=(x,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    if verbose:
        print(f"pre-training {title}")
    bar = keras.utils.Progbar(steps, verbose=verbose, stateful_metrics=["loss"])
    it = iter(dist)
    last = np.zeros(len(mux.students))
    for i in range(steps):
        last = step(next(it)).numpy()
        bar.update(i + 1, [("loss", float(last.sum()))])
        if writer and (i % 10 == 0 or i == steps - 1):
            with writer.as_default(step=i):
                tf.summary.scalar("pretrain/total_mse", float(last.sum()))
                for spec, v in zip(mux.specs, last):
                    tf.summary.scalar(f"pretrain/{block_name(*spec)}", float(v))
    return last
