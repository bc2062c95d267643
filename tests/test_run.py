"""The run core: Progress counts and restores, the Session writes one row per iteration, checkpoints on cadence,
stops on the callback or the stop rule, and saves at the end — for every trainer alike."""

import math

import pytest

from proxrl import PPO
from proxrl.run import Progress, Session


def test_progress_counts_iterations_episodes_and_the_last_20_returns():
    p = Progress()
    assert math.isnan(p.mean_return()) and not p.reached(0.0)
    for k in range(25):
        p.advance(10, returns=[float(k)], lengths=[k + 1])
    assert (p.global_step, p.iteration, p.num_episodes) == (250, 25, 25)
    assert list(p.recent_returns) == [float(k) for k in range(5, 25)]  # the last 20
    assert p.mean_return() == 14.5 and p.reached(14.5) and not p.reached(14.6) and not p.reached(None)
    p.advance(1, [1.0, 2.0], episodes=64)  # GRPO: one step, 64 completions, one mean reward
    assert p.num_episodes == 89
    q = Progress()
    q.load_state_dict(p.state_dict())
    assert q == p


class _Toy:
    """The smallest Trainer: counts steps, saves a marker file."""

    algo, final_checkpoint = "toy", "final.txt"

    def __init__(self, run_dir, **config):
        from proxrl.algos.agent import ActorCriticConfig

        self.config = ActorCriticConfig(**config)
        self.progress, self.run_dir, self.show_progress = Progress(), run_dir, False
        self.checkpoints, self.saved = [], []

    def save_checkpoint(self):
        self.checkpoints.append(self.progress.global_step)

    def save(self, path):
        self.saved.append(path)
        path.write_text(str(self.progress.global_step))
        return path


@pytest.mark.parametrize("stop", ["target", "callback", "stop_return", "error"])
def test_session_logs_checkpoints_stops_and_saves(tmp_path, stop):
    toy = _Toy(tmp_path, total_steps=300, checkpoint_every=2, tensorboard=False, stop_return=5.0)
    rows = []

    def callback(trainer, row):
        rows.append(row)
        return not (stop == "callback" and row["iteration"] == 3)

    with pytest.raises(RuntimeError) if stop == "error" else _nothing():
        with Session(toy, None, toy.config.stop_return if stop == "stop_return" else None) as session:
            while session.running():
                toy.progress.advance(10, returns=[float(toy.progress.iteration)])
                if stop == "error" and toy.progress.iteration == 4:
                    raise RuntimeError("boom")
                if session.finish_iteration({"loss": 1.0}, callback):
                    break
    last = {"target": 30, "callback": 3, "stop_return": 20, "error": 3}[stop]  # stop_return: 20 returns, mean ≥ 5
    assert [r["iteration"] for r in rows] == list(range(1, last + 1))
    assert rows[-1]["global_step"] == 10 * last and rows[-1]["loss"] == 1.0 and "sps" in rows[-1]
    assert toy.checkpoints == [20 * k for k in range(1, last // 2 + 1)]
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "progress.csv").is_file()
    assert toy.saved == ([] if stop == "error" else [tmp_path / "final.txt"])  # no final save after a crash


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_every_trainer_offers_the_protocol():
    from proxrl import ALGORITHMS

    for cls in set(ALGORITHMS.values()):
        for name in (
            "learn",
            "state_dict",
            "save",
            "save_checkpoint",
            "load",
            "evaluate",
            "summary",
            "describe_evaluation",
            "final_checkpoint",
            "config_class",
            "global_step",
        ):
            assert hasattr(cls, name), (cls.__name__, name)
    agent = PPO("CartPole-v1", num_envs=2, num_steps=16, num_minibatches=2, progress=False, tensorboard=False)
    agent.learn(64)
    assert agent.global_step == agent.progress.global_step == 64


def test_the_env_trainers_derive_from_their_family_base_one_level_deep():
    # issue 32: what the env trainers share is a base class a type checker sees, not free functions bound by alias
    # lines; each trainer derives from it directly and the base derives from nothing
    from proxrl import PG, PPO, MultiAgentPPO, OffPolicyPG
    from proxrl.algos.agent import EnvTrainer

    assert EnvTrainer.__bases__ == (object,)
    for cls in (PG, PPO, OffPolicyPG, MultiAgentPPO):
        assert cls.__bases__ == (EnvTrainer,), cls
        shared = [name for name in ("save", "load", "state_dict", "close", "predict") if name in vars(cls)]
        assert shared == (["predict"] if cls is MultiAgentPPO else []), (cls, shared)  # inherited, not re-bound


def test_every_trainer_is_a_trainer_as_the_cli_sees_it_and_declares_what_it_can_do():
    # issue 32: the CLI, proxrl.load and the Session see the typed Trainer protocol; a trainer declares its
    # capabilities (data_parallel, method, saves_together) instead of being probed, and no generic module names a
    # method or probes with getattr/hasattr
    import inspect

    import proxrl
    from proxrl import ALGORITHMS, cli, run
    from proxrl.run import Trainer

    members = [n for n in vars(Trainer) if not n.startswith("_")] + list(Trainer.__annotations__)
    for cls in set(ALGORITHMS.values()):
        missing = [
            n for n in members if not hasattr(cls, n) and n not in ("progress", "run_dir", "show_progress", "config")
        ]
        assert not missing, (cls.__name__, missing)
    assert [name for name, cls in ALGORITHMS.items() if cls.data_parallel] == ["grpo"]
    for module in (cli, run, proxrl):
        source = inspect.getsource(module)
        assert "getattr(" not in source and "hasattr(" not in source, module.__name__
    assert '"grpo"' not in inspect.getsource(cli) and '"grpo"' not in inspect.getsource(run)


def test_grpo_derives_from_the_language_model_trainer_one_level_deep():
    from proxrl import GRPO
    from proxrl.lm.trainer import LanguageModelTrainer

    assert LanguageModelTrainer.__bases__ == (object,) and GRPO.__bases__ == (LanguageModelTrainer,)
    assert not [name for name in ("save", "load", "state_dict", "close", "evaluate", "summary") if name in vars(GRPO)]


def test_log_every_writes_every_nth_row_and_the_last_whatever_stops_the_run(tmp_path):
    import csv

    from proxrl import PPO

    agent = PPO(
        "CartPole-v1", num_envs=2, num_steps=8, log_every=3, run_dir=tmp_path, progress=False, tensorboard=False
    )
    agent.learn(16 * 20, callback=lambda a, row: row["iteration"] < 5)  # the callback stops it at iteration 5
    rows = list(csv.DictReader(open(tmp_path / "progress.csv")))
    assert [int(r["iteration"]) for r in rows] == [3, 5]
