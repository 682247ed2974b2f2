"""One worker process for tests/test_distributed.py.

    # multi-worker block pre-training (TF_CONFIG names the cluster and this task)
    python tests/mwms_worker.py pretrain --teacher T.keras --out DIR [--steps 30]

    # one shard of an exploration (worker from TF_CONFIG, or --worker/--workers)
    python tests/mwms_worker.py explore --teacher T.keras --journal J.sqlite --out R.json

Both load the same saved teacher and the same real Fashion-MNIST images, so
every process starts from identical weights and data. Runs are seeded and
use deterministic ops on one thread.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# Shared with the test: the plan's configurations and the exploration's candidates.
PRETRAIN_CONFIGS = [[0.5, 0.5, 0.3], [0.5, 0.5, 0.7], [0.3, 0.7, 0.7], [0.5, 0.7, 0.7]]
EXPLORE_CONFIGS = [[0.3, 0.3, 0.3], [0.7, 0.7, 0.7], [0.5, 0.5, 0.5],
                   [0.7, 0.3, 0.5], [0.3, 0.7, 0.3], [0.5, 0.7, 0.7]]


def _setup_tf():
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def pretrain(args):
    tf = _setup_tf()
    # The strategy must exist before any other TensorFlow work in the process.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import keras
    from wootz_keras import data
    from wootz_keras.compose import pretrain_blocks
    from wootz_keras.planner import find_modules, plan_tuning_blocks

    keras.utils.set_random_seed(0)
    teacher = keras.saving.load_model(args.teacher)
    modules = find_modules(teacher)
    plan = plan_tuning_blocks(PRETRAIN_CONFIGS, module_names=modules.names)
    x, y = data.load_fashion_mnist("train", limit=512, seed=0)
    blocks = pretrain_blocks(teacher, plan, data.as_dataset(x, y, args.batch_size),
                             steps=args.steps, strategy=strategy, learning_rate=2e-3,
                             modules=modules, verbose=0)
    blocks.save(args.out)
    print(f"worker done: {strategy.num_replicas_in_sync} replicas, {len(blocks)} blocks, "
          f"{blocks.seconds:.1f}s", flush=True)
    return 0


def explore(args):
    tf = _setup_tf()
    tf.config.experimental.enable_op_determinism()
    import keras
    from wootz_keras import data
    from wootz_keras.training import Protocol
    from wootz_keras.workflow.runner import explore as run_explore

    keras.utils.set_random_seed(0)
    teacher = keras.saving.load_model(args.teacher)
    train = data.load_fashion_mnist("train", limit=512, seed=0)
    val = data.load_fashion_mnist("test", limit=256, seed=1)
    result = run_explore(teacher, EXPLORE_CONFIGS, train, val, objective=args.objective,
                         journal=args.journal, progress=False, seed=0,
                         protocol=Protocol(max_steps=args.finetune_steps, eval_every=5,
                                           batch_size=32),
                         worker=None if args.worker is None else str(args.worker))
    with open(args.out + ".tmp", "w") as f:
        json.dump(result.to_dict(), f)
    os.replace(args.out + ".tmp", args.out)
    print(result.message, flush=True)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("pretrain", "explore"))
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--journal")
    ap.add_argument("--objective", default="smallest_params:alpha=0.05")
    ap.add_argument("--finetune_steps", type=int, default=10)
    ap.add_argument("--worker", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args(argv)
    return pretrain(args) if args.mode == "pretrain" else explore(args)


if __name__ == "__main__":
    sys.exit(main())
