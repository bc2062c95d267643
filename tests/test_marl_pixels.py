"""Multi-agent PPO on image observations: the Nature CNN in IPPO / MAPPO / HAPPO, uint8 rollouts, the central
critic's view of every agent's frame, SuperSuit's preprocessing (pistonball), and the refusals."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from proxrl import ConfigError, MultiAgentPPO
from proxrl.distributions import UnsupportedSpaceError
from proxrl.errors import RunWarning
from proxrl.policies import StackedFrames
from proxrl.policies.encoders import NatureCNN

TEAM = "proxrl.envs.pixel_team"
TINY = {"num_envs": 2, "num_steps": 8, "progress": False, "tensorboard": False}


def _cnns(module: torch.nn.Module) -> list[NatureCNN]:
    return [m for m in module.modules() if isinstance(m, NatureCNN)]


@pytest.mark.parametrize("method", ["ippo", "mappo", "happo"])
def test_every_method_puts_the_cnn_on_image_observations_and_stores_them_as_uint8(method):
    agent = MultiAgentPPO(TEAM, method=method, **TINY)
    actors, critics = agent.policy.actors, agent.policy.critics
    assert len(_cnns(actors)) == (1 if method == "mappo" else 2)  # mappo shares its actor
    assert len(_cnns(critics)) == (2 if method == "ippo" else 1)  # local critics, or one central
    batch = agent.start_envs().collect()
    assert batch.obs.dtype == torch.uint8 and batch.obs.shape == (8, 2, 2, 36 * 36)
    assert batch.state.shape == (8, 2, 0)  # no float copy of the frames as a "state"
    before = [p.detach().clone() for p in agent.policy.parameters()]
    agent.learn(32)
    assert agent.global_step == 32
    unchanged = [i for i, (b, p) in enumerate(zip(before, agent.policy.parameters(), strict=True)) if torch.equal(b, p)]
    assert not unchanged, f"parameters {unchanged} did not change"  # every CNN, head and critic is trained


def test_the_central_critic_sees_every_agents_frame_stacked_along_the_channels():
    frames = torch.randint(0, 256, (3, 2, 5 * 6 * 4), dtype=torch.uint8)  # [B, A, H·W·C], channels last
    stacked = StackedFrames(2, (5, 6, 4), "last")(frames)
    by_hand = torch.cat([frames[:, a].reshape(3, 5, 6, 4).permute(0, 3, 1, 2) for a in range(2)], 1)
    assert stacked.shape == (3, 8, 5, 6) and torch.equal(stacked, by_hand)
    first = StackedFrames(2, (4, 5, 6), "first")(frames)
    assert torch.equal(first, frames.reshape(3, 8, 5, 6))

    agent = MultiAgentPPO(TEAM, method="mappo", seed=3, **TINY)
    obs = torch.randint(0, 256, (4, 2, 36 * 36), dtype=torch.uint8)
    v = agent.policy.value(obs, torch.zeros(4, 0))
    assert torch.equal(v[:, 0], v[:, 1])  # one V(s), repeated per agent
    other = obs.clone()
    other[:, 1] = 255 - other[:, 1]  # change only agent 1's frame
    assert not torch.allclose(agent.policy.value(other, torch.zeros(4, 0)), v)


def test_pixel_policies_save_load_and_act_alike(tmp_path):
    agent = MultiAgentPPO(TEAM, method="mappo", run_dir=tmp_path / "run", **TINY).learn(16)
    loaded = MultiAgentPPO.load(tmp_path / "run")
    obs = np.random.default_rng(0).integers(0, 256, (5, 2, 36 * 36), dtype=np.uint8)
    assert np.array_equal(agent.predict(obs), loaded.predict(obs))
    assert loaded.evaluate(episodes=2)["mean_length"] == 8


def test_what_cannot_apply_to_images_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="global_state=env is not supported with image observations"):
        MultiAgentPPO(TEAM, method="mappo", global_state="env", **TINY)
    with pytest.raises(UnsupportedSpaceError, match="agent_id is not supported with the CNN on image observations"):
        MultiAgentPPO(TEAM, method="mappo", agent_id=True, **TINY)
    with pytest.raises(ConfigError, match="policy=cnn needs every agent to observe a uint8 image"):
        MultiAgentPPO("toy_pettingzoo", method="mappo", policy="cnn", **TINY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        agent = MultiAgentPPO(TEAM, method="ippo", policy="mlp", hidden_sizes=(16,), **TINY)
    assert any(issubclass(w.category, RunWarning) and "flattened into an MLP" in str(w.message) for w in caught)
    assert not _cnns(agent.policy)
    agent.learn(16)  # the pixels go flat into the MLPs
    with pytest.warns(RunWarning, match="flattened into an MLP"):
        flat = MultiAgentPPO(TEAM, method="mappo", policy="mlp", hidden_sizes=(16,), **TINY)
    assert flat.spec.state_dim == 2 * 36 * 36  # without the CNN, the central critic reads the concatenated frames
    obs = torch.rand(4, 2, 36 * 36) * 255
    v = flat.policy.value(obs, obs.reshape(4, -1))
    assert v[:, 0].std() > 0  # not a constant: the critic has inputs


@pytest.mark.parametrize("method", ["ippo", "mappo", "happo"])
def test_pistonball_with_supersuits_preprocessing_trains_with_the_cnn(method):
    pytest.importorskip("pymunk")
    pytest.importorskip("supersuit")
    agent = MultiAgentPPO(
        "pettingzoo.butterfly.pistonball_v6",
        method=method,
        env_kwargs={"n_pistons": 3, "max_cycles": 12, "continuous": False},
        grayscale=True,
        frame_size=40,
        frame_stack=2,
        **TINY,
    )
    assert agent.spec.image_shape == (40, 40, 2) and _cnns(agent.policy)
    agent.learn(16)
    result = agent.evaluate(episodes=1)
    assert 1 <= result["mean_length"] <= 12 and len(result["agent_returns"]) == 3  # the ball may reach the wall


def test_cnn_precision_bfloat16_reaches_every_actor_and_the_central_critic():
    agent = MultiAgentPPO(TEAM, method="happo", cnn_precision="bfloat16", **TINY)
    cnns = _cnns(agent.policy)
    assert len(cnns) == 3 and all(c.compute_dtype == torch.bfloat16 for c in cnns)  # two actors, one critic
    seen: list[torch.dtype] = []
    for c in cnns:
        c.convs[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    agent.learn(32)
    assert seen and set(seen) == {torch.bfloat16}
    with (
        pytest.raises(ConfigError, match="cnn_precision=bfloat16 applies to the Nature CNN"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", RunWarning)  # the flattened-images warning policy=mlp gives here
        MultiAgentPPO(TEAM, method="mappo", policy="mlp", cnn_precision="bfloat16", **TINY)
