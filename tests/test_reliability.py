"""Faults a long run meets: a crash or SIGKILL at any moment, an env that raises in a worker, a NaN from the env,
random bad configuration. Each test states what the user sees and what survives (docs/reliability.md)."""

import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from proxrl import PPO, checkpoint, config
from proxrl.algos.ppo import PPOConfig
from proxrl.config import ConfigError
from proxrl.errors import EnvError, NonFiniteError

ROOT = Path(__file__).resolve().parent.parent
SMALL = dict(
    num_envs=2,
    num_steps=16,
    num_minibatches=2,
    num_epochs=1,
    tensorboard=False,
    progress=False,
    hidden_sizes=(16,),
    checkpoint_every=1,
    keep_checkpoints=2,
)


def test_an_env_error_in_an_async_worker_names_the_step_and_keeps_the_envs_traceback(tmp_path):
    run = tmp_path / "run"
    agent = PPO("proxrl_test/Raise-v0", vectorization="async", run_dir=run, **SMALL)
    with pytest.raises(EnvError) as info, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        agent.learn(10_000)  # gymnasium's worker warns with the env's traceback: kept here, not in the test summary
    assert any("Received the following error from Worker" in str(w.message) for w in seen)
    message = str(info.value)
    # each env raises at its 40th step: the 3rd rollout of 16 steps × 2 envs, rollout step 7 → env step 64 + 14
    assert "at env step 78 (rollout step 7)" in message
    assert "RuntimeError in the environment's step(): counter env broke at count 40" in message
    assert "toy_envs.py" in message  # the env's own traceback, from the worker process
    state = checkpoint.load(checkpoint.latest(run))
    assert state["global_step"] == 64
    assert not (run / "model.pt").exists()  # nothing is written after the failure


def test_a_nan_observation_stops_the_run_and_every_checkpoint_on_disk_loads(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(NonFiniteError, match="non-finite observation at rollout step 7"):
        PPO("proxrl_test/NaN40-v0", run_dir=run, **SMALL).learn(10_000)
    files = checkpoint.list_checkpoints(run / "checkpoints")
    assert files and all(checkpoint.load(f)["global_step"] <= 64 for f in files)
    assert not (run / "model.pt").exists()


def test_a_crash_while_writing_a_checkpoint_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    checkpoint.atomic_save({"format_version": checkpoint.FORMAT_VERSION, "step": 1}, path)

    def dies_half_way(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.atomic_save({"format_version": checkpoint.FORMAT_VERSION, "step": 2}, path)
    assert checkpoint.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left behind


def test_a_crash_while_writing_a_folder_checkpoint_keeps_the_previous_folder(tmp_path):
    # the folder store (save_pretrained checkpoints) writes a temporary folder and renames it over the old one
    def writes(text):
        def write(folder):
            folder.mkdir()
            (folder / "weights").write_text(text)

        return write

    def dies_half_way(folder):
        folder.mkdir()
        (folder / "weights").write_text("half")
        raise OSError("disk full")

    checkpoint.save_folder(tmp_path / "model", writes("old"))
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_folder(tmp_path / "model", dies_half_way)
    assert (tmp_path / "model" / "weights").read_text() == "old"
    checkpoint.save_folder(tmp_path / "model", writes("new"))  # the next save clears the half-written folder
    assert (tmp_path / "model" / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_migrations_are_the_loading_trainers_own_and_unlisted_versions_read_unchanged(tmp_path):
    path = tmp_path / "old.pt"
    config = "env: x\nvectorization: auto\n"
    checkpoint.atomic_save({"format_version": checkpoint.OLDEST_FORMAT, "algo": "a", "config": config}, path)
    migrated = checkpoint.load(
        path, algo="a", migrations={checkpoint.OLDEST_FORMAT: checkpoint.drop_config_keys("vectorization")}
    )
    assert migrated["format_version"] == checkpoint.FORMAT_VERSION and migrated["config"] == "env: x\n"
    assert checkpoint.load(path, algo="a")["config"] == config  # no migrations: the state reads as it was
    with pytest.raises(checkpoint.CheckpointError, match="'a' checkpoint, not 'b'"):
        checkpoint.load(path, algo="b", migrations={checkpoint.OLDEST_FORMAT: lambda state: 1 / 0})


def _latest_step(run: Path) -> int:
    files = checkpoint.list_checkpoints(run / "checkpoints")
    return int(files[-1].name[5:17]) if files else -1


def test_sigkill_at_random_moments_always_leaves_a_loadable_checkpoint_and_resume_continues(tmp_path):
    run, rng = tmp_path / "run", random.Random(0)
    cli = [sys.executable, "-m", "proxrl.cli"]
    first = [
        *cli,
        "train",
        "ppo",
        "--env",
        "CartPole-v1",
        "--run-dir",
        str(run),
        "--total-steps",
        "10000000",
        "--quiet",
        "--eval-episodes",
        "0",
        "--set",
        "checkpoint_every=1",
        "--set",
        "keep_checkpoints=2",
        "--set",
        "tensorboard=false",
        "--set",
        "num_steps=16",
        "--set",
        "num_epochs=2",
    ]
    resume = [*cli, "train", "--resume", str(run), "--total-steps", "10000000", "--quiet", "--eval-episodes", "0"]
    steps = []
    for kill in range(4):
        proc = subprocess.Popen(
            first if kill == 0 else resume, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.time() + 120
        # wait until this process has written a checkpoint of its own, then kill it at a random moment
        while time.time() < deadline and proc.poll() is None and _latest_step(run) <= (steps[-1] if steps else -1):
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        state = checkpoint.load(checkpoint.latest(run))  # always loadable
        steps.append(state["global_step"])
        for f in checkpoint.list_checkpoints(run / "checkpoints"):
            checkpoint.load(f)
    # every resume went on from where the previous process was killed
    assert all(later > earlier for earlier, later in zip(steps, steps[1:], strict=False)), steps
    done = subprocess.run(
        [*cli, "train", "--resume", str(run), "--total-steps", str(steps[-1] + 512), "--quiet", "--eval-episodes", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming ppo from step {steps[-1]:,}" in done.stdout
    assert checkpoint.load(run / "model.pt")["global_step"] >= steps[-1] + 512
    assert not list((run / "checkpoints").glob(".*.tmp"))


hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies
CONFIGS = sorted({cls.config_class for cls in __import__("proxrl").ALGORITHMS.values()}, key=lambda c: c.__name__)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**7),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.integers(-2, 300), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@pytest.mark.parametrize("config_class", CONFIGS, ids=lambda c: c.__name__)
def test_random_config_values_give_a_valid_config_or_a_config_error(config_class):
    fields = list(config_class.__dataclass_fields__)

    @hypothesis.settings(max_examples=150, deadline=None)
    @hypothesis.given(st.dictionaries(st.one_of(st.sampled_from(fields), st.text(max_size=8)), VALUES, max_size=5))
    def check(values):
        try:
            cfg = config.from_dict(config_class, values)
        except ConfigError:
            return
        assert config.from_dict(config_class, config.read_yaml_text(config.dump(cfg))) == cfg

    check()


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.lists(st.text(max_size=20), max_size=4))
def test_random_set_strings_give_a_valid_config_or_a_config_error(items):
    try:
        cfg = config.from_dict(PPOConfig, config.parse_overrides(items))
    except ConfigError:
        return
    assert isinstance(cfg, PPOConfig)


@pytest.mark.parametrize("fused", [True, False])
def test_a_nan_loss_names_the_term_and_the_step(fused):
    agent = PPO("proxrl_test/Target-discrete-v0", fused_gradient=fused, **{**SMALL, "checkpoint_every": 0})
    with torch.no_grad():
        agent.policy.critic_head[0].bias.fill_(float("nan"))  # V = NaN, hence Â = NaN through GAE
    # the first non-finite term of the loss is named (the surrogate, whose Â came from V), with the step
    with pytest.raises(NonFiniteError, match="non-finite policy_loss at env step 32"):
        agent.learn(64)


def test_a_checkpoint_for_other_spaces_is_refused(tmp_path):
    PPO("proxrl_test/Target-discrete-v0", run_dir=tmp_path / "run", **SMALL).learn(32)
    with pytest.raises(checkpoint.CheckpointError, match="weights do not fit this policy"):
        PPO.load(tmp_path / "run", env="proxrl_test/Target-box-v0")


def test_a_non_finite_gradient_with_a_finite_loss_stops_before_the_optimiser_step():
    agent = PPO("proxrl_test/Target-discrete-v0", fused_gradient=False, **{**SMALL, "checkpoint_every": 0})
    weight = agent.policy.actor_head[0].weight
    weight.register_hook(lambda g: torch.full_like(g, float("inf")))
    before = weight.detach().clone()
    with pytest.raises(NonFiniteError, match="non-finite gradient at env step 32 \\(the loss was finite\\)"):
        agent.learn(64)
    assert torch.equal(weight.detach(), before)  # Adam never stepped on the bad gradient


def _grpo_latest_step(run: Path) -> int:
    folders = sorted(p for p in (run / "checkpoints").glob("step_*") if (p / checkpoint.TRAINER_STATE).is_file())
    return int(folders[-1].name[5:]) if folders else -1


def test_grpo_sigkill_at_random_moments_keeps_a_loadable_checkpoint_and_resume_continues(tmp_path):
    pytest.importorskip("transformers")
    from proxrl import GRPO

    run, rng = tmp_path / "run", random.Random(1)
    cli = [sys.executable, "-m", "proxrl.cli"]
    tiny = [
        f"--set={kv}"
        for kv in (
            "tiny_hidden_size=16",
            "tiny_layers=1",
            "tiny_heads=2",
            "warmup_steps=5",
            "prompts_per_step=2",
            "group_size=4",
            "max_new_tokens=4",
            "eval_every=0",
            "eval_examples=4",
            "checkpoint_every=1",
            "keep_checkpoints=2",
            "tensorboard=false",
            "torch_threads=1",
        )
    ]
    first = [*cli, "train", "grpo", "--run-dir", str(run), "--total-steps", "1000000", "--quiet", *tiny]
    resume = [*cli, "train", "--resume", str(run), "--total-steps", "1000000", "--quiet"]
    steps = []
    for kill in range(3):
        proc = subprocess.Popen(
            first if kill == 0 else resume, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and _grpo_latest_step(run) <= (steps[-1] if steps else -1):
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))  # a tiny GRPO step (and its checkpoint) takes ~20 ms
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        for folder in sorted((run / "checkpoints").glob("step_*")):  # every visible checkpoint loads whole
            assert GRPO.load(folder, progress=False).global_step == int(folder.name[5:])
        steps.append(GRPO.load(run, progress=False).global_step)
    assert all(later > earlier for earlier, later in zip(steps, steps[1:], strict=False)), steps
    done = subprocess.run(
        [*cli, "train", "--resume", str(run), "--total-steps", str(steps[-1] + 2), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming grpo from step {steps[-1]:,}" in done.stdout
    assert GRPO.load(run / "model", progress=False).global_step == steps[-1] + 2
