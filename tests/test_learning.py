"""Seeded learning thresholds (marker ``learning``: run by ``make test-learning`` and in CI).

Each preset trains three fixed seeds (two at a time, one per core) and must reach its threshold within its
step budget for at least two of them. The metric is the mean return of the last 20 training episodes. A test of
"two of three" stops its runs once two seeds have decided it (``run_seeds(need=2)``; PROXRL_ALL_SEEDS=1 runs all).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import sys
from pathlib import Path

import pytest

CONFIGS = Path(__file__).parent.parent / "configs"
SEEDS = (0, 1, 2)


def steps_to_threshold(
    preset: str, seed: int, threshold: float, budget: int, overrides: dict | None = None
) -> tuple[int, int | None, float]:
    """Train one seed; return (seed, env steps at which the mean-20 return first reached ``threshold`` or
    None, wall seconds)."""
    import time

    import torch

    from proxrl import ALGORITHMS, config

    torch.set_num_threads(1)
    cls = ALGORITHMS[config.read_yaml(CONFIGS / preset)["algo"]]
    cfg = config.resolve(
        cls.config_class,
        CONFIGS / preset,
        {"seed": seed, "total_steps": budget, "stop_return": threshold, "tensorboard": False, **(overrides or {})},
    )
    start = time.perf_counter()
    agent = cls(config=cfg, progress=False).learn()
    return seed, (agent.global_step if agent.progress.reached(threshold) else None), time.perf_counter() - start


def run_seeds(
    preset: str, threshold: float, budget: int, overrides: dict | None = None, need: int | None = None
) -> list[tuple[int, int | None, float]]:
    """Train every seed of SEEDS, two at a time; (seed, steps to threshold or None, wall seconds) per seed.

    With ``need`` (a test that asks ``need`` seeds of three to reach the threshold), the runs stop as soon as the
    outcome is decided, ``need`` seeds having reached it or too few being left to: the test's verdict is the same,
    and the seeds not run are printed as such (PROXRL_ALL_SEEDS=1 runs them all, for the README's table)."""
    if os.environ.get("PROXRL_ALL_SEEDS") == "1":
        need = None
    results: list[tuple[int, int | None, float]] = []
    with mp.get_context("spawn").Pool(2) as pool:  # left by `with`: terminate() stops runs still going
        args = [(preset, seed, threshold, budget, overrides) for seed in SEEDS]
        for result in pool.imap_unordered(_steps_to_threshold_star, args):
            results.append(result)
            reached = sum(steps is not None for _, steps, _ in results)
            if need is not None and (reached >= need or len(results) - reached > len(SEEDS) - need):
                break
    for seed, steps, wall in sorted(results):
        print(
            f"{preset} seed {seed}: {'steps to threshold ' + format(steps, ',') if steps else 'not reached'}"
            f" ({wall:.1f} s)"
        )
    for seed in sorted(set(SEEDS) - {seed for seed, _, _ in results}):
        print(f"{preset} seed {seed}: not run to the end (the other seeds decided the test)")
    return sorted(results)


def _steps_to_threshold_star(args: tuple) -> tuple[int, int | None, float]:
    return steps_to_threshold(*args)


def grpo_accuracy_gain(
    seed: int, steps: int, preset: str = "grpo_addition.yaml"
) -> tuple[int, float, float, float, float, float]:
    """Train ``preset`` for ``steps`` GRPO steps; (seed, greedy and sampled held-out accuracy after the warm-up,
    the same at the end, wall seconds)."""
    import time

    from proxrl import GRPO, config

    cfg = config.resolve(
        GRPO.config_class,
        CONFIGS / preset,
        {"seed": seed, "total_steps": steps, "tensorboard": False, "checkpoint_every": 0, "eval_every": 0},
    )
    start = time.perf_counter()
    agent = GRPO(config=cfg, progress=False).learn()
    h = agent.held_out
    return (
        seed,
        float(h.warmup),
        float(h.warmup_sampled),
        float(h.last),
        float(h.last_sampled),
        time.perf_counter() - start,
    )


@pytest.mark.learning
def test_grpo_raises_held_out_addition_accuracy():
    """GRPO's first preset (a tiny Llama with a character tokenizer, warmed up until greedy exact match on training
    prompts reaches 0.8) raises the held-out exact match of the policy it optimises (4 samples per prompt at T = 1)
    by ≥ 8 points in 200 steps, and greedy accuracy does not collapse. One seed (0; measured +23.2 points with
    AVX-512 kernels, +14.9 with AVX2's): docs/grpo.md has this preset's runs on more seeds, and
    benchmarks/grpo_learning.py runs any preset on several."""
    pytest.importorskip("transformers")
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        seed, greedy0, sampled0, greedy1, sampled1, wall = pool.submit(grpo_accuracy_gain, 0, 200).result()
    print(
        f"grpo_addition.yaml seed {seed}: held-out exact match sampled {sampled0:.3f} -> {sampled1:.3f}, "
        f"greedy {greedy0:.3f} -> {greedy1:.3f} after 200 steps ({wall:.0f} s)"
    )
    assert sampled1 >= sampled0 + 0.08, (sampled0, sampled1)
    assert greedy1 >= greedy0 - 0.10, (greedy0, greedy1)


@pytest.mark.learning
def test_grpo_raises_held_out_strict_accuracy_on_the_gsm8k_format_task():
    """configs/grpo_math.yaml (a tiny Qwen2 with the task's BPE tokenizer and chat template, warmed up to greedy strict
    accuracy 0.2 on training prompts) raises the held-out strict accuracy of the policy it optimises (4 samples per
    prompt at T = 1) by ≥ 2 points in 120 steps on seed 2, and greedy strict accuracy does not collapse. Seed 2
    measured +7.0 points with AVX-512 kernels, +6.2 with AVX2's, +10.0 on an AVX-512 Xeon (the kernels change the
    trajectory; the evaluation's noise is ~1.8 points for the difference of two 800-sample accuracies). One seed,
    because three take ten minutes of CI: the three-seed figures are `python benchmarks/grpo_learning.py`'s
    (benchmarks/RESULTS.md)."""
    pytest.importorskip("transformers")
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        seed, greedy0, sampled0, greedy1, sampled1, wall = pool.submit(
            grpo_accuracy_gain, 2, 120, "grpo_math.yaml"
        ).result()
    print(
        f"grpo_math.yaml seed {seed}: held-out strict accuracy sampled {sampled0:.3f} -> {sampled1:.3f}, "
        f"greedy {greedy0:.3f} -> {greedy1:.3f} after 120 steps ({wall:.0f} s)"
    )
    assert sampled1 >= sampled0 + 0.02, (sampled0, sampled1)
    assert greedy1 >= greedy0 - 0.10, (greedy0, greedy1)


@pytest.mark.learning
@pytest.mark.parametrize(
    "preset,threshold,budget",
    [
        ("ppo_cartpole.yaml", 475.0, 100_000),
        ("ppo_cartpole_fast.yaml", 475.0, 100_000),
        ("ppo_pendulum.yaml", -400.0, 200_000),
        ("ppo_kl_cartpole.yaml", 475.0, 150_000),
        ("ppo_adaptive_kl_cartpole.yaml", 475.0, 150_000),
        ("ppo_clip_kl_cartpole.yaml", 475.0, 150_000),
        ("pg_gae_cartpole.yaml", 475.0, 150_000),
        ("reinforce_cartpole.yaml", 400.0, 300_000),
        ("offpolicy_pg_cartpole.yaml", 400.0, 300_000),
    ],
)
def test_preset_reaches_threshold_for_two_of_three_seeds(preset, threshold, budget):
    results = run_seeds(preset, threshold, budget, need=2)
    solved = [steps for _, steps, _ in results if steps is not None]
    assert len(solved) >= 2, f"{preset}: reached {threshold} within {budget:,} steps for {len(solved)}/3 seeds"
    assert all(steps <= budget for steps in solved)


# rl-zoo3's tuned PPO for Pendulum-v1 (hyperparams/ppo.yml at 22e3ff24), which explores with gSDE
def gsde_steps_to_threshold(seed: int, threshold: float, budget: int) -> tuple[int, int | None]:
    """PPO with gSDE on the zoo's Pendulum preset (proxrl/zoo/ppo/Pendulum-v1.yaml: rl-zoo's settings, use_sde):
    (seed, env steps at which the mean-20 return first reached ``threshold``, or None)."""
    import torch

    from proxrl import PPO

    torch.set_num_threads(1)
    overrides = {"seed": seed, "total_steps": budget, "stop_return": threshold, "tensorboard": False}
    agent = PPO.from_preset("Pendulum-v1", progress=False, **overrides)
    assert agent.config.use_sde
    agent.learn()
    return seed, agent.global_step if agent.progress.reached(threshold) else None


@pytest.mark.learning
def test_ppo_with_gsde_reaches_minus_400_on_pendulum_for_two_of_three_seeds():
    """The zoo's Pendulum preset, gSDE (use_sde, θ_ε resampled every 4 steps) with rl-zoo's settings, reaches a
    mean-20 return of −400 within 80k steps for at least two seeds (measured: seeds 0, 1, 2 at 40,960, 36,864 and
    36,864 steps, ~15 s of CPU each; on seed 0 the same settings without gSDE were at −558 at 41k; the zoo's figure
    is −172 ± 104 after 100k)."""
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn")) as pool:
        results = sorted(pool.map(gsde_steps_to_threshold, SEEDS, [-400.0] * 3, [80_000] * 3))
    print(results)
    assert sum(steps is not None for _, steps in results) >= 2, results


@pytest.mark.learning
def test_the_nature_cnn_learns_a_pixel_task_that_an_mlp_does_not_within_the_budget():
    """Is the 6×6 shape anywhere in a 36×36 uint8 frame a square or a ring (PixelShape-v0; return 8 at best, 4 by
    chance)? The CNN reaches 7 within 8,192 steps for every seed, in float32 and in bfloat16 (cnn_precision;
    measured: float32 at 4,608-4,864); an MLP (64, 64) over the same pixels does not."""
    cnn = run_seeds("ppo_pixels.yaml", 7.0, 8_192)
    assert all(steps is not None for _, steps, _ in cnn), cnn
    bf16 = run_seeds("ppo_pixels.yaml", 7.0, 8_192, {"cnn_precision": "bfloat16"})
    assert all(steps is not None for _, steps, _ in bf16), bf16
    mlp = run_seeds("ppo_pixels.yaml", 7.0, 8_192, {"policy": "mlp", "hidden_sizes": [64, 64]})
    assert all(steps is None for _, steps, _ in mlp), mlp


def evaluated_after(preset: str, seed: int, budget: int, overrides: dict, episodes: int) -> tuple[int, float]:
    """Train one seed for ``budget`` steps, then (seed, the mean return of ``episodes`` deterministic episodes)."""
    import torch

    from proxrl import ALGORITHMS, config

    torch.set_num_threads(1)
    cls = ALGORITHMS[config.read_yaml(CONFIGS / preset)["algo"]]
    cfg = config.resolve(cls.config_class, CONFIGS / preset, {"seed": seed, "total_steps": budget, **overrides})
    agent = cls(config=cfg, progress=False).learn()
    return seed, agent.evaluate(episodes)["mean_return"]


@pytest.mark.learning
def test_ippo_mappo_and_happo_learn_a_multi_agent_pixel_task_with_the_cnn():
    """proxrl.envs.pixel_team: two agents, each names the shape in its own 36×36 frame (team return 16 at best, 8 by
    chance). With the Nature CNN (IPPO: one per actor and critic; MAPPO: a shared actor and the central critic over
    both frames; HAPPO: per-agent actors, sequential updates), every method reaches a deterministic team return
    of 14 within 6,144 steps on every seed (measured: 15.9-16)."""
    runs = [(m, s) for m in ("ippo", "mappo", "happo") for s in SEEDS]
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn")) as pool:
        results = list(
            pool.map(
                evaluated_after,
                ["mappo_pixels.yaml"] * len(runs),
                [s for _, s in runs],
                [6_144] * len(runs),
                [{"method": m, "tensorboard": False} for m, _ in runs],
                [20] * len(runs),
            )
        )
    table = [(m, seed, mean) for (m, _), (seed, mean) in zip(runs, results, strict=True)]
    print(table)
    assert all(mean >= 14.0 for _, _, mean in table), table


@pytest.mark.learning
def test_an_lstm_remembers_a_cue_that_a_memoryless_policy_cannot():
    """CueMemory-v0: a cue shown once must be named 5 steps later (return 1 at best, 0.5 for any memoryless policy).
    After 20k steps PPO with the LSTM core names it in ≥ 95 % of 200 evaluation episodes for every seed; the same
    network without the core stays at chance (≤ 65 %: a deterministic memoryless policy is right exactly when the
    cue is the one it always names)."""
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn")) as pool:
        runs = {
            recurrent: sorted(
                pool.map(
                    evaluated_after,
                    ["ppo_lstm_memory.yaml"] * 3,
                    SEEDS,
                    [20_000] * 3,
                    [{"recurrent": recurrent, "tensorboard": False}] * 3,
                    [200] * 3,
                )
            )
            for recurrent in ("lstm", "none")
        }
    print(runs)
    assert all(mean >= 0.95 for _, mean in runs["lstm"]), runs
    assert all(mean <= 0.65 for _, mean in runs["none"]), runs


@pytest.mark.learning
def test_happo_finds_the_matrix_game_optimum_that_a_shared_policy_cannot_represent():
    """Penalty game [[0, 1], [1, 0]]: the optimum needs different actions, which one shared policy without an agent
    id cannot choose. HAPPO (per-agent actors, sequential updates) must find it in ≥ 9 of 10 seeds (measured 10),
    MAPPO with one shared actor and no id in none. benchmarks/matrix_games.py prints the whole table (IPPO too,
    and the climbing game) that docs/multiagent.md shows."""
    sys.path.insert(0, str(CONFIGS.parent / "benchmarks"))
    from matrix_games import optimum_hits

    hits = optimum_hits([("happo", None, "penalty"), ("mappo", True, "penalty")], seeds=10)
    print(
        f"penalty game: optimum reached by happo in {hits[('happo', None, 'penalty')]}/10 seeds, by a shared "
        f"mappo actor without an id in {hits[('mappo', True, 'penalty')]}/10"
    )
    assert hits[("happo", None, "penalty")] >= 9, hits
    assert hits[("mappo", True, "penalty")] == 0, hits


def tictactoe_selfplay(seed: int, budget: int) -> tuple[int, dict, dict]:
    """Self-play IPPO on tic-tac-toe; (seed, result as first player, as second player) against random legal moves."""
    import torch

    from proxrl import config
    from proxrl.algos.multiagent import MultiAgentPPO, MultiAgentPPOConfig
    from proxrl.marl.evaluation import evaluate_against_random

    torch.set_num_threads(1)
    cfg = config.resolve(
        MultiAgentPPOConfig,
        CONFIGS / "ippo_tictactoe.yaml",
        {"seed": seed, "total_steps": budget, "tensorboard": False},
    )
    agent = MultiAgentPPO(config=cfg, progress=False).learn()
    return seed, evaluate_against_random(agent, 500, seat=0), evaluate_against_random(agent, 500, seat=1)


@pytest.mark.learning
def test_selfplay_ippo_beats_a_random_tictactoe_player_with_legal_moves_only():
    budget = 100_000  # turns (rows × copies) of self-play (docs/multiagent.md has 200,000 too)
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn")) as pool:
        results = sorted(pool.map(tictactoe_selfplay, SEEDS, [budget] * len(SEEDS)))
    for seed, first, second in results:
        print(
            f"tictactoe seed {seed}: as first player win {first['win']:.1%} draw {first['draw']:.1%}; as second "
            f"player win {second['win']:.1%} draw {second['draw']:.1%}; illegal moves {first['illegal']}"
            f" + {second['illegal']}"
        )
    assert all(first["illegal"] == 0 and second["illegal"] == 0 for _, first, second in results)
    # a random first player wins ~58 %; this preset's trained first player wins ~70–97 % by seed and float rounding
    # (docs/multiagent.md)
    assert sum(first["win"] >= 0.75 for _, first, _ in results) >= 2


def spread_return(method: str, seed: int, budget: int) -> tuple[str, int, float]:
    """Train on simple_spread (3 agents); (method, seed, mean team return over the last 5 logged updates, i.e. of
    the last ~100 episodes)."""
    import torch

    from proxrl import config
    from proxrl.algos.multiagent import MultiAgentPPO, MultiAgentPPOConfig

    torch.set_num_threads(1)
    cfg = config.resolve(
        MultiAgentPPOConfig,
        CONFIGS / f"{method}_simple_spread.yaml",
        {"seed": seed, "total_steps": budget, "tensorboard": False},
    )
    rows: list[float] = []
    MultiAgentPPO(config=cfg, progress=False).learn(callback=lambda _a, row: rows.append(row["mean_return"]))
    return method, seed, sum(rows[-5:]) / 5


@pytest.mark.learning
def test_mappo_and_ippo_improve_clearly_over_random_on_simple_spread():
    # A uniformly random policy scores a team return of −83.0 ± 22.6 per episode (200 episodes, seeds 0–199),
    # so ≈ −83 ± 2.3 over 100 episodes; −70 is far outside that.
    budget = 50_000
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn")) as pool:
        results = list(pool.map(spread_return, ("mappo", "ippo"), (0, 0), (budget, budget)))
    for method, seed, ret in results:
        print(
            f"simple_spread {method} seed {seed}: mean team return of the last ~100 episodes {ret:.1f} after "
            f"{budget:,} steps (random: −83.0)"
        )
    assert all(ret >= -70.0 for _, _, ret in results)


@pytest.mark.learning
@pytest.mark.ray
def test_ppo_on_two_ray_runners_solves_cartpole_for_two_of_three_seeds(ray_cluster):
    """configs/ppo_cartpole.yaml with its 8 envs stepped by 2 Ray runner actors of 4 envs each reaches 475 within
    the local preset's budget (seeds one at a time: the runners take the two cores)."""
    import time

    from proxrl import PPO, config

    solved = []
    for seed in SEEDS:
        overrides = {"total_steps": 100_000, "stop_return": 475.0, "tensorboard": False, "seed": seed}
        cfg = config.resolve(
            PPO.config_class, CONFIGS / "ppo_cartpole.yaml", {**overrides, "runners": "ray", "num_runners": 2}
        )
        start = time.perf_counter()
        agent = PPO(config=cfg, progress=False)
        try:
            agent.learn()
        finally:
            agent.close()
        steps = agent.global_step if agent.progress.reached(475.0) else None
        wall = time.perf_counter() - start
        print(f"ppo_cartpole.yaml on 2 Ray runners seed {seed}: steps to threshold {steps} ({wall:.1f} s)")
        solved += [steps] if steps is not None else []
    assert len(solved) >= 2, f"reached 475 within 100,000 steps for {len(solved)}/3 seeds"


@pytest.mark.learning
@pytest.mark.ray
def test_mappo_on_two_ray_runners_improves_clearly_over_random_on_simple_spread(ray_cluster):
    """configs/mappo_simple_spread.yaml with its copies on 2 Ray runner actors: the same bar as the local run
    (−70 against random's −83.0 ± 2.3 over 100 episodes) within the same budget, seed 0."""
    import time

    from proxrl import config
    from proxrl.algos.multiagent import MultiAgentPPO, MultiAgentPPOConfig

    budget = 50_000
    cfg = config.resolve(
        MultiAgentPPOConfig,
        CONFIGS / "mappo_simple_spread.yaml",
        {"seed": 0, "total_steps": budget, "tensorboard": False, "runners": "ray", "num_runners": 2},
    )
    rows: list[float] = []
    start = time.perf_counter()
    agent = MultiAgentPPO(config=cfg, progress=False)
    try:
        agent.learn(callback=lambda _a, row: rows.append(row["mean_return"]))
    finally:
        agent.close()
    ret = sum(rows[-5:]) / 5
    print(
        f"simple_spread mappo on 2 Ray runners seed 0: mean team return of the last ~100 episodes {ret:.1f} after "
        f"{budget:,} steps ({time.perf_counter() - start:.0f} s; random: −83.0)"
    )
    assert ret >= -70.0


def zoo_evaluation(algo: str, env: str, seed: int, budget: int, episodes: int = 10) -> tuple[int, float, float]:
    """Train ``env``'s zoo preset of ``algo`` (proxrl/zoo/) for ``budget`` steps; (seed, mean deterministic return of
    ``episodes`` fresh episodes, wall seconds)."""
    import time

    import torch

    from proxrl import ALGORITHMS, config, presets

    torch.set_num_threads(1)
    preset = presets.find(algo, env)
    assert preset is not None, f"no {algo} preset for {env}"
    cls = ALGORITHMS[algo]
    overrides = {"seed": seed, "total_steps": budget, "tensorboard": False}
    cfg = config.resolve(cls.config_class, None, overrides, base=preset.values_for(env))
    start = time.perf_counter()
    agent = cls(config=cfg, progress=False).learn()
    return seed, agent.evaluate(episodes)["mean_return"], time.perf_counter() - start


@pytest.mark.learning
@pytest.mark.parametrize(
    "env,threshold,budget",
    [
        # the preset is proxrl's defaults with normalisation (the zoo's needs gSDE): 92.5-93.1 at 100k steps
        ("MountainCarContinuous-v0", 90.0, 100_000),
        # the zoo's preset (1M steps); the mean of 20 training episodes passes -100 at 50-60k steps
        ("Acrobot-v1", -100.0, 100_000),
    ],
)
def test_zoo_preset_reaches_threshold_on_every_seed(env, threshold, budget):
    """Issue 33: MountainCarContinuous ≥ 90 and Acrobot ≥ −100 on every seed of three with their zoo presets
    (deterministic evaluation of 10 episodes after the budget)."""
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(zoo_evaluation, "ppo", env, seed, budget) for seed in SEEDS]
        results = sorted(f.result() for f in futures)
    for seed, mean, wall in results:
        print(f"{env} seed {seed}: evaluation {mean:.1f} after {budget:,} steps ({wall:.1f} s)")
    assert all(mean >= threshold for _, mean, _ in results), results


def zoo_preset(algo: str, env: str) -> str:
    """The path of ``env``'s zoo preset of ``algo`` (proxrl/zoo/), for :func:`run_seeds`."""
    from proxrl import presets

    found = presets.find(algo, env)
    assert found is not None, f"no {algo} preset for {env}"
    return str(found.path)


@pytest.mark.learning
def test_an_lstm_preset_learns_cartpole_with_its_velocities_hidden():
    """CartPoleNoVel-v1 (ẋ and θ̇ zeroed): its zoo preset (rl-zoo3's RecurrentPPO settings) reaches a mean return of
    400 over 20 training episodes within 80,000 steps for 2 of 3 seeds. Measured: seeds 0 and 1 at 43,520 and 47,360
    steps (67 s of CPU for seed 1), seed 2 not within 80,000 (117 s of CPU; deterministic evaluation 213 then).
    Dearer than the other presets' tests: an LSTM update replays each sequence step by step."""
    results = run_seeds(zoo_preset("ppo", "CartPoleNoVel-v1"), 400.0, 80_000, need=2)
    solved = [steps for _, steps, _ in results if steps is not None]
    assert len(solved) >= 2, f"reached 400 within 80,000 steps for {len(solved)}/3 seeds"


@pytest.mark.learning
def test_ppo_learns_minigrid_from_its_dict_observation_with_the_small_cnn():
    """MiniGrid-Empty-Random-5x5-v0 as MiniGrid gives it (a 7×7×3 view, a direction, a Text mission that is dropped):
    its zoo preset reaches a mean return of 0.9 over 20 training episodes (sampled actions, as rl-zoo3 scores
    MiniGrid) within 30,000 steps for 2 of 3 seeds. Measured: seeds 0, 1, 2 at 7,168, 7,168 and 9,216 steps, ~8 s
    each (the DoorKey-5x5 preset, the same settings: 37-42k steps, ~55 s)."""
    pytest.importorskip("minigrid")
    results = run_seeds(zoo_preset("ppo", "MiniGrid-Empty-Random-5x5-v0"), 0.9, 30_000, need=2)
    solved = [steps for _, steps, _ in results if steps is not None]
    assert len(solved) >= 2, f"reached 0.9 within 30,000 steps for {len(solved)}/3 seeds"
