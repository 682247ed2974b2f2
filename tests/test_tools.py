"""The command tools prune / plan / pretrain / explore / export, run as commands.

Each tool runs in a subprocess (`python tools/<name>.py ...`) from a fresh
folder, on real Fashion-MNIST with tiny settings: exit codes, the
deterministic figures they print, the files written, and one-line errors in
one style that leave nothing behind. A missing dataset fails these tests
(it is required, never skipped).
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
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=path)
    env.pop("TF_CONFIG", None)
    return subprocess.run([sys.executable, os.path.join(TOOLS, f"{tool}.py"), *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


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
                             "--steps", 3, "--batch_size", 32, "--out_dir", "blocks",
                             "--log_dir", "tb"], cwd=d)
    return d, proc


def test_prune_demo_prints_the_deterministic_sizes(tmp_path):
    import keras

    import wootz_keras as wz
    from wootz_keras import zoo
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
    full = zoo.plain_cnn()
    small = wz.strip_pruning(wz.prune_filters(full, rate=0.5))
    assert rows["before pruning"][:2] == [wz.count_params(full), wz.count_flops(full)]
    assert rows["after pruning"][:2] == [wz.count_params(small), wz.count_flops(small)]
    assert rows["after fine-tuning"][:2] == rows["after pruning"][:2]
    assert all(0.0 <= r[2] <= 1.0 for r in rows.values())
    ratio = wz.count_params(full) / wz.count_params(small)
    assert f"size: {ratio:.2f}x fewer params" in out
    assert os.listdir(tmp_path) == ["small.keras"]      # no temporary left behind
    saved = keras.models.load_model(tmp_path / "small.keras", compile=False)
    assert saved.count_params() == wz.count_params(small)


def test_plan_writes_plan_and_configs(planned):
    from wootz_keras.planner import Plan
    d, proc = planned
    out = _ok(proc)
    plan = Plan.from_json(d / "plan.json")
    assert len(plan.blocks) > 0
    assert len(plan.configs) == 3 and plan.num_modules == 3
    assert plan.module_names[0].startswith("residual0")
    configs = json.loads((d / "plan.configs.json").read_text())
    assert configs["format"] == "wootz_keras.configs" and len(configs["configs"]) == 3
    assert "unassigned stem_conv" in out
    assert f"tuning blocks: {len(plan.blocks)}" in out
    cov = plan.coverage
    assert f"coverage: {cov.fraction:.1%} of module slots" in out


def test_plan_with_explicit_modules_keeps_only_trainable_blocks(models, tmp_path):
    """Explicit modules that end inside a residual block change their output
    shape when pruned: the plan keeps no block over them, and says so."""
    from wootz_keras.planner import Plan
    modules = [["stage1_block1_conv1", "stage1_block1_bn1", "stage1_block1_relu1"],
               ["stage2_block1_conv1", "stage2_block1_bn1"], ["stage3_block1_conv1"]]
    out = _ok(_run("plan", ["--model", models / "r8.keras", "--num_configs", 8,
                            "--modules_json", json.dumps(modules), "--out", "custom.json"],
                   cwd=tmp_path))
    assert "dropped: they touch modules whose output shape changes" in out
    plan = Plan.from_json(tmp_path / "custom.json")
    assert plan.blocks == [] and plan.module_names[0].startswith("custom0")
    assert sorted(os.listdir(tmp_path)) == ["custom.configs.json", "custom.json"]


def test_pretrain_then_explore(models, pretrained):
    from wootz_keras.compose import PretrainedBlocks
    from wootz_keras.planner import Plan
    d, proc = pretrained
    out = _ok(proc)
    blocks = PretrainedBlocks.load(d / "blocks")
    plan = Plan.from_json(d / "plan.json")
    assert len(blocks) == len(plan.blocks) and all(blocks.final_loss(b) >= 0 for b in blocks)
    for b in plan.blocks:
        assert b.name in out
    assert os.listdir(d / "tb")                          # TensorBoard events

    out = _ok(_run("explore", [
        "--teacher", models / "r8.keras", "--configs", "plan.configs.json", "--blocks", "blocks",
        "--objective", "smallest_params:alpha=0.99", "--journal", "journal.sqlite",
        "--max_steps", 2, "--eval_every", 2, "--val_size", 200, "--report_dir", "report"],
        cwd=d))
    assert "composed mode" in out and "meets" in out
    for name in ("report.md", "results.json", "results.csv", "accuracy_vs_size.png"):
        assert (d / "report" / name).exists(), name
    results = json.loads((d / "report" / "results.json").read_text())
    assert list(results["figures"]["modes"]) == ["composed"]
    assert results["figures"]["modes"]["composed"]["winner_index"] is not None


def test_explore_says_when_no_candidate_meets_the_objective(models, planned):
    d, proc = planned
    _ok(proc)
    out = _ok(_run("explore", [
        "--teacher", models / "r8.keras", "--configs", "plan.configs.json",
        "--objective", "most_accurate:max_params=10", "--journal", "none.sqlite",
        "--max_steps", 1, "--eval_every", 1, "--val_size", 64], cwd=d))
    assert "default mode" in out and "no candidate" in out


def test_export_writes_every_format(models, tmp_path):
    out = _ok(_run("export", ["--model", models / "r8.keras", "--num_verify_images", 20,
                              "--latency_runs", 3, "--out_dir", "out"], cwd=tmp_path))
    assert sorted(os.listdir(tmp_path / "out")) == ["manifest.json", "model.onnx",
                                                    "model.tflite", "savedmodel"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert {e["status"] for e in manifest["formats"].values()} == {"ok"}
    assert "manifest:" in out


TOOLS_AND_BAD_FLAGS = [
    ("prune", ["--model", "no_such_zoo_net", "--out", "x.keras"], "no_such_zoo_net", 2),
    ("prune", ["--model", "missing/model.keras", "--out", "x.keras"], "missing/model.keras", 2),
    ("prune", ["--rate", "1.5", "--out", "x.keras"], "1.5", 2),
    ("prune", ["--criterion", "magic", "--train_size", 64, "--test_size", 64], "magic", 2),
    ("prune", ["--data", "/no/such/folder"], "/no/such/folder", 2),
    ("prune", ["--no_such_flag=1"], "no_such_flag", 2),
    ("plan", ["--model", "{models}/r8.keras", "--rates", "0.3,1.5", "--out", "p.json"],
     "1.5", 2),
    ("pretrain", ["--teacher", "{models}/r8.keras", "--plan", "{models}/r14_plan.json",
                  "--out_dir", "blocks", "--log_dir", "tb"], "r14_plan.json", 1),
    ("pretrain", ["--teacher", "{models}/r8.keras", "--plan", "missing.json"], "--plan", 2),
    ("explore", ["--teacher", "{models}/r8.keras", "--configs", "{models}/r14_plan.configs.json",
                 "--journal", "j.sqlite", "--report_dir", "rep"], "r14_plan.configs.json", 1),
    ("explore", ["--teacher", "{models}/r8.keras", "--configs", "{models}/r14_plan.configs.json",
                 "--objective", "fastest_net:alpha=0.1", "--journal", "j.sqlite"],
     "fastest_net", 2),
    ("explore", ["--teacher", "{models}/r8.keras", "--configs", "{models}/r14_plan.configs.json",
                 "--journal", "postgresql://nobody@127.0.0.1:9/none"], "127.0.0.1", 1),
    ("export", ["--model", "{models}/r8.keras", "--formats", "tflite,coreml"], "coreml", 2),
    ("export", ["--model", "no_such_model.keras"], "no_such_model.keras", 2),
    ("run", ["--scale=huge"], "--scale", 2),
    ("prune", ["--round_to=auto"], "--runtime", 2),
    ("prune", ["--round_to=3.5"], "--round_to", 2),
    ("prune", ["--round_to=4", "--runtime=tflite"], "--runtime", 2),
]


@pytest.mark.parametrize("tool, args, culprit, code", TOOLS_AND_BAD_FLAGS)
def test_bad_input_fails_with_one_line_and_no_files(models, tmp_path, tool, args, culprit, code):
    proc = _run(tool, [a.format(models=models) if isinstance(a, str) else a for a in args],
                cwd=tmp_path)
    last = _last_line(proc.stderr)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert last.startswith(f"wootz-{tool}: error:"), last
    assert culprit in last, last
    assert os.listdir(tmp_path) == []
    if tool == "pretrain" and code == 1:
        assert "6 modules but the teacher has 3" in last
    # TensorFlow's native start-up lines stay off the console
    assert "I0000" not in proc.stderr and "absl::InitializeLog" not in proc.stderr


@pytest.mark.parametrize("tool, flags", [
    ("prune", ["--model", "--data", "--rate", "--rates", "--criterion", "--round_to", "--runtime",
               "--out"]),
    ("plan", ["--model", "--rates", "--num_configs", "--seed", "--[no]uniform_size", "--[no]fill",
              "--modules_json", "--out"]),
    ("pretrain", ["--teacher", "--plan", "--data", "--steps", "--batch_size", "--learning_rate",
                  "--out_dir", "--log_dir", "--strategy"]),
    ("explore", ["--teacher", "--configs", "--blocks", "--mode", "--objective", "--journal",
                 "--max_steps", "--eval_every", "--patience", "--val_size", "--report_dir"]),
    ("run", ["--scale", "--model", "--data", "--image_size", "--loss", "--metric", "--journal",
             "--out_dir", "--export_dir"]),
    ("export", ["--model", "--formats", "--quantize", "--out_dir", "--data"]),
])
def test_helpfull_documents_the_flags(tmp_path, tool, flags):
    proc = _run(tool, ["--helpfull"], cwd=tmp_path, timeout=60)
    own = proc.stdout.split(f"{tool}.py:", 1)[-1]
    for flag in flags:
        assert f"  {flag}:" in own, flag
    assert f"wootz-{tool}" in proc.stdout or f"{tool}.py" in proc.stdout
    if "--data" in flags:
        assert "Rescaling" in own          # where preprocessing belongs
    assert os.listdir(tmp_path) == []
