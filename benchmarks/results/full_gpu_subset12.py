"""Throwaway: the full preset's teacher/configs/plan/blocks (loaded from the run
folder), explored on an evenly spread-by-size SUBSET of the 256 configs, because
the whole preset cannot finish inside the session's device time."""
import dataclasses, json, os, statistics, sys, time
sys.path.insert(0, os.getcwd())
import numpy as np
from wootz_keras import data as wz_data
from wootz_keras.workflow import pipeline as P
from wootz_keras.search.report import write_report
from wootz_keras.workflow.runner import accuracy, explore, init_accuracies, make_candidates
from wootz_keras.planner.config_space import ConfigSpace
from wootz_keras.planner.modules import find_modules
from wootz_keras.utils.io import read_json, write_json

scale, out_dir, json_out = sys.argv[1], sys.argv[2], sys.argv[3]
N = int(os.environ.get("WZ_N", 16)); K = int(os.environ.get("WZ_K", 8)); M = int(os.environ.get("WZ_M", 4))
s = dataclasses.replace(P.SCALES[scale], medians_sample=M, init_sample=K)
sub_dir = os.path.join(out_dir, f"subset{N}"); os.makedirs(sub_dir, exist_ok=True)
train = wz_data.load_fashion_mnist("train", limit=s.train_size, seed=s.seed)
val = wz_data.load_fashion_mnist("test", limit=s.val_size, seed=s.seed)
teacher = P.load_teacher(os.path.join(out_dir, "teacher.keras"), s, train, val)
full_accuracy = accuracy(teacher, val)
modules = find_modules(teacher)
configs = P._configs(ConfigSpace(modules, rates=s.rates), s, os.path.join(out_dir, "configs.json"))
plan = P._plan(configs, modules, os.path.join(out_dir, "plan.json"))
blocks = P._blocks(teacher, plan, modules, s, train, os.path.join(out_dir, "blocks"))
pretrain_seconds = blocks.seconds
cands = make_candidates(teacher, configs, modules)
order = sorted(range(len(configs)), key=lambda i: (cands[i].params, i))
pick = [order[j] for j in P._spread(len(order), N)]
sub = [configs[i] for i in pick]
P._log(f"teacher {full_accuracy:.4f}; subset of {len(sub)} configs (of {len(configs)}), indices {pick}; "
       f"params {[cands[i].params for i in pick]}; pretrain_seconds {pretrain_seconds:.1f}")
write_json(os.path.join(sub_dir, "subset.json"), {"N": N, "K": K, "M": M, "indices": pick})
common = dict(objective=s.objective, journal=os.path.join(sub_dir, "journal.sqlite"),
              finetune_steps=s.finetune_steps, learning_rate=s.learning_rate,
              batch_size=s.batch_size, full_accuracy=full_accuracy, modules=modules, seed=s.seed)
results = {}
P._log("exploring with default pruning (subset)")
results["default"] = explore(teacher, sub, train, val, blocks=None, **common)
P._log("exploring with composability (subset)")
results["composed"] = explore(teacher, sub, train, val, blocks=blocks, **common)
ipath = os.path.join(sub_dir, "init.json")
if os.path.exists(ipath):
    init_d = read_json(ipath, "init")
else:
    samp = [sub[i] for i in P._spread(len(sub), K)]
    P._log(f"init accuracy right after assembly, {len(samp)} configs: default pruning")
    a = init_accuracies(teacher, samp, val, None, modules)
    P._log("init accuracy right after assembly: with pre-trained blocks")
    b = init_accuracies(teacher, samp, val, blocks, modules)
    init_d = {"init": a, "init_plus": b}; write_json(ipath, init_d)
medians = P._final_medians(teacher, sub, blocks, modules, s, train, val, os.path.join(sub_dir, "medians.json"))
fig = P._figures(s, teacher, full_accuracy, results, init_d["init"], init_d["init_plus"], medians,
                 pretrain_seconds, plan)
fig["subset_indices"] = pick; fig["num_configs_total"] = len(configs)
write_report(sub_dir, full_accuracy, teacher.count_params(), results,
             extra={"pretrain_seconds": pretrain_seconds, "figures": fig, "settings": dataclasses.asdict(s)})
write_json(os.path.join(sub_dir, "figures.json"), fig, default=str)
write_json(json_out, fig, default=str)
P._log("done"); print(json.dumps(fig, default=str, indent=1))
