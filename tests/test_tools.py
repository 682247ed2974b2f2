"""The command tools prune / plan / pretrain / explore, run as commands.

Each tool runs in a subprocess (`python tools/<name>.py ...`) from a fresh
folder, on real Fashion-MNIST with tiny settings: exit codes, printed
results, the files written, and one-line errors that leave nothing behind.
"""

import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(REPO, "tools")


def _run(tool, args, cwd, timeout=300):
    path = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", PYTHONPATH=path)
    env.pop("TF_CONFIG", None)
    return subprocess.run([sys.executable, os.path.join(TOOLS, f"{tool}.py"), *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module", autouse=True)
def _fashion_mnist():
    from wootz_keras.data import DataUnavailableError, load_fashion_mnist
    try:
        load_fashion_mnist("test", limit=1)
    except DataUnavailableError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Saved untrained tiny ResNets: r8 (3 modules) and r14 (6 modules), with a
    plan and configurations made for r14."""
    from wootz_keras import zoo
    from wootz_keras.planner import ConfigSpace, find_modules, plan_tuning_blocks
    d = tmp_path_factory.mktemp("models")
    zoo.resnet_cifar(depth=8, width=8).save(d / "r8.keras")
    r14 = zoo.resnet_cifar(depth=14, width=8)
    r14.save(d / "r14.keras")
    modules = find_modules(r14)
    space = ConfigSpace(modules, (0.3, 0.5, 0.7))
    configs = space.sample(12, seed=0)
    plan_tuning_blocks(configs, module_names=modules.names).to_json(d / "r14_plan.json")
    space.save(d / "r14_plan.configs.json", configs)
    return d


@pytest.fixture(scope="module")
def planned(models, tmp_path_factory):
    """wootz-plan on r8: 3 configurations (seed 0 gives one repeated block)."""
    d = tmp_path_factory.mktemp("run")
    proc = _run("plan", ["--model", models / "r8.keras", "--rates", "0.3,0.5,0.7",
                         "--num_configs", 3, "--seed", 0, "--out", "plan.json"], cwd=d)
    return d, proc


@pytest.fixture(scope="module")
def pretrained(models, planned):
    d, proc = planned
    _ok(proc)
    proc = _run("pretrain", ["--teacher", models / "r8.keras", "--plan", "plan.json",
                             "--steps", 3, "--batch_size", 32, "--train_size", 256,
                             "--out_dir", "blocks", "--log_dir", "tb"], cwd=d)
    return d, proc


def test_prune_demo_prints_smaller_model(tmp_path):
    out = _ok(_run("prune", ["--model", "plain_cnn", "--train_size", 512, "--test_size", 256,
                             "--epochs", 1, "--finetune_epochs", 1, "--out", "small.keras"],
                   cwd=tmp_path))
    rows = {}
    for line in out.splitlines():
        m = re.match(r"(before pruning|after pruning|after fine-tuning.*?)\s+([\d,]+)\s+([\d,]+)"
                     r"\s+([\d.]+)$", line)
        if m:
            rows[m.group(1).split(" (")[0]] = [float(g.replace(",", "")) for g in m.groups()[1:]]
    assert set(rows) == {"before pruning", "after pruning", "after fine-tuning"}, out
    before, after = rows["before pruning"], rows["after fine-tuning"]
    assert after[0] < before[0] and after[1] < before[1]
    assert all(0.0 <= r[2] <= 1.0 for r in rows.values())
    assert "ratio after/before" in out
    assert os.listdir(tmp_path) == ["small.keras"]      # no temporary left behind
    import keras
    saved = keras.models.load_model(tmp_path / "small.keras", compile=False)
    assert saved.count_params() == int(after[0])


def test_plan_writes_plan_and_configs(planned):
    from wootz_keras.planner import Plan
    d, proc = planned
    out = _ok(proc)
    plan = Plan.from_json(d / "plan.json")
    assert len(plan.blocks) > 0
    assert len(plan.configs) == 3 and plan.num_modules == 3
    assert plan.module_names[0].startswith("residual0")
    configs = json.loads((d / "plan.configs.json").read_text())
    assert configs["format"] == "wootz-configs/1" and len(configs["configs"]) == 3
    assert "unassigned prunable layers" in out and "stem_conv" in out
    assert f"tuning blocks: {len(plan.blocks)}" in out
    assert "coverage:" in out and "expected reuse" in out


def test_plan_with_explicit_modules_keeps_only_trainable_blocks(models, tmp_path):
    """Explicit modules that end inside a residual block change their output
    shape when pruned: the plan keeps no block over them (wootz-pretrain could
    not train one), and says so."""
    from wootz_keras.planner import Plan
    modules = [["stage1_block1_conv1", "stage1_block1_bn1", "stage1_block1_relu1"],
               ["stage2_block1_conv1", "stage2_block1_bn1"], ["stage3_block1_conv1"]]
    out = _ok(_run("plan", ["--model", models / "r8.keras", "--num_configs", 8,
                            "--modules_json", json.dumps(modules), "--out", "custom.json"],
                   cwd=tmp_path))
    assert out.count("(output shape changes: default pruning only)") == 3
    assert "block(s) dropped" in out
    plan = Plan.from_json(tmp_path / "custom.json")
    assert plan.blocks == [] and plan.module_names[0].startswith("custom0")
    assert sorted(os.listdir(tmp_path)) == ["custom.configs.json", "custom.json"]


def test_pretrain_then_explore(models, pretrained):
    from wootz_keras.compose import PretrainedBlocks
    d, proc = pretrained
    out = _ok(proc)
    assert "final MSE" in out and "time:" in out
    blocks = PretrainedBlocks.load(d / "blocks")
    assert len(blocks) > 0 and all(b.final_loss is not None for b in blocks)
    assert os.listdir(d / "tb")                          # TensorBoard events

    out = _ok(_run("explore", [
        "--teacher", models / "r8.keras", "--configs", "plan.configs.json", "--blocks", "blocks",
        "--objective", "smallest_params:alpha=0.99", "--journal", "journal.sqlite",
        "--finetune_steps", 2, "--train_size", 256, "--val_size", 128,
        "--report_dir", "report"], cwd=d))
    assert "winner: #" in out
    assert (d / "journal.sqlite").stat().st_size > 0
    for name in ("report.md", "results.json", "results.csv", "accuracy_vs_size.png"):
        assert (d / "report" / name).exists(), name
    results = json.loads((d / "report" / "results.json").read_text())
    assert list(results["modes"]) == ["composed"]
    assert results["modes"]["composed"]["winner_index"] is not None


def test_explore_says_when_no_candidate_meets_the_objective(models, planned):
    d, proc = planned
    _ok(proc)
    out = _ok(_run("explore", [
        "--teacher", models / "r8.keras", "--configs", "plan.configs.json",
        "--objective", "most_accurate:max_params=10", "--journal", "none.sqlite",
        "--finetune_steps", 1, "--train_size", 64, "--val_size", 64], cwd=d))
    assert "default mode" in out
    assert "no candidate met" in out


@pytest.mark.parametrize("tool, args, culprit, code", [
    ("prune", ["--model", "no_such_zoo_net", "--out", "x.keras"], "no_such_zoo_net", 2),
    ("prune", ["--model", "missing/model.keras", "--out", "x.keras"], "missing/model.keras", 2),
    ("prune", ["--rate", "1.5", "--out", "x.keras"], "--rate", 2),
    ("plan", ["--model", "{models}/r8.keras", "--rates", "0.3,1.5", "--out", "p.json"],
     "1.5", 2),
    ("pretrain", ["--teacher", "{models}/r8.keras", "--plan", "{models}/r14_plan.json",
                  "--out_dir", "blocks", "--log_dir", "tb"], "r14_plan.json", 1),
    ("explore", ["--teacher", "{models}/r8.keras", "--configs", "{models}/r14_plan.configs.json",
                 "--journal", "j.sqlite", "--report_dir", "rep"], "r14_plan.configs.json", 1),
    ("explore", ["--teacher", "{models}/r8.keras", "--configs", "{models}/r14_plan.configs.json",
                 "--objective", "fastest_net:alpha=0.1", "--journal", "j.sqlite"],
     "fastest_net", 2),
])
def test_bad_input_fails_with_one_line_and_no_files(models, tmp_path, tool, args, culprit, code):
    proc = _run(tool, [a.format(models=models) for a in args], cwd=tmp_path)
    last = _last_line(proc.stderr)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert last.startswith(f"wootz-{tool}: error:"), last
    assert culprit in last, last
    assert os.listdir(tmp_path) == []
    if tool == "pretrain":
        assert "6 modules but the teacher has 3" in last


@pytest.mark.parametrize("tool, flags", [
    ("prune", ["--model", "--rate", "--rates", "--criterion", "--round_to", "--train_size",
               "--test_size", "--epochs", "--finetune_epochs", "--out"]),
    ("plan", ["--model", "--rates", "--num_configs", "--seed", "--[no]uniform_size",
              "--modules_json", "--out"]),
    ("pretrain", ["--teacher", "--plan", "--steps", "--batch_size", "--learning_rate",
                  "--train_size", "--out_dir", "--log_dir", "--strategy"]),
    ("explore", ["--teacher", "--configs", "--blocks", "--objective", "--journal",
                 "--finetune_steps", "--train_size", "--val_size", "--report_dir"]),
])
def test_helpfull_documents_the_flags(tmp_path, tool, flags):
    proc = _run(tool, ["--helpfull"], cwd=tmp_path, timeout=60)
    own = proc.stdout.split(f"tools/{tool}.py:", 1)[-1]
    for flag in flags:
        assert f"  {flag}:" in own, flag
    assert "Examples:" in proc.stdout
    assert os.listdir(tmp_path) == []
