"""Observations users meet (issue 33): Dict keys that no encoder takes (a Text ``mission``) dropped and said once,
``obs_keys`` picking keys, small images going to the small CNN, ``policy: mlp`` on a Dict of an image and a
Discrete, the NoVel env ids and ``hide_obs``."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from proxrl import PPO, ConfigError
from proxrl.envs import make_eval_env, make_vec_env, no_velocity
from proxrl.errors import RunWarning
from proxrl.policies.encoders import DictEncoder, NatureCNN, SmallCNN, image_encoder

SMALL = dict(num_envs=2, num_steps=16, num_minibatches=2, hidden_sizes=(16,), progress=False, tensorboard=False)
GRID = "proxrl_test/GridLike-v0"


class GridLikeEnv(gym.Env):
    """MiniGrid's observation in small: a 7×7×3 uint8 view, a Discrete direction and a Text mission."""

    observation_space = spaces.Dict(
        {
            "image": spaces.Box(0, 255, (7, 7, 3), np.uint8),
            "direction": spaces.Discrete(4),
            "mission": spaces.Text(40),
        }
    )
    action_space = spaces.Discrete(3)

    def _obs(self) -> dict:
        return {"image": self.np_random.integers(0, 11, (7, 7, 3), dtype=np.uint8), "direction": 1, "mission": "go"}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        return self._obs(), float(action == 1), False, False, {}


gym.register(GRID, entry_point=GridLikeEnv, max_episode_steps=8)


def _run_warnings(**kwargs) -> tuple[PPO, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        agent = PPO(GRID, **SMALL, **kwargs)
        agent.learn(32)
    return agent, [str(w.message) for w in caught if issubclass(w.category, RunWarning)]


def test_a_text_key_is_dropped_with_one_line_naming_it_and_obs_keys():
    agent, said = _run_warnings()
    dropped = [m for m in said if "dropped" in m]
    assert len(dropped) == 1, said  # once, at construction (not per env, nor again at evaluation)
    assert "'mission' (Text)" in dropped[0] and "obs_keys=['direction', 'image']" in dropped[0]
    encoder = agent.policy.encoder
    assert isinstance(encoder, DictEncoder) and list(encoder.layout.space.spaces) == ["direction", "image"]
    assert agent.evaluate(1)["lengths"] == [8]  # the evaluation env drops it too
    obs, _ = GridLikeEnv().reset(seed=0)
    assert agent.predict(obs) in range(3)  # predict takes the env's own dict, its mission ignored
    # naming the kept keys silences the line
    assert not [m for m in _run_warnings(obs_keys=("direction", "image"))[1] if "dropped" in m]


def test_obs_keys_keep_only_the_keys_named():
    agent, _ = _run_warnings(obs_keys=("image",))
    encoder = agent.policy.encoder
    assert list(encoder.layout.space.spaces) == ["image"] and encoder.features_dim == 128  # the small CNN alone
    assert agent.envs.rollout.batch.obs.shape == (16, 2, 7 * 7 * 3)


@pytest.mark.parametrize(
    ("obs_keys", "env", "message"),
    [
        (("image", "goal"), GRID, r"obs_keys: unknown keys \['goal'\]; the observation's keys are \['direction', "),
        (("mission",), GRID, r"keys \['mission'\] have spaces no encoder takes .* keep some of \['direction', "),
        (("pos",), "CartPole-v1", r"obs_keys=\['pos'\] picks keys of Dict observations.*remove obs_keys"),
    ],
)
def test_obs_keys_that_cannot_apply_are_a_config_error_naming_them(obs_keys, env, message):
    with pytest.raises(ConfigError, match=message):
        PPO(env, obs_keys=obs_keys, **SMALL)


def test_images_get_the_nature_cnn_the_small_cnn_or_none_by_size():
    def box(*shape: int) -> spaces.Box:
        return spaces.Box(0, 255, shape, np.uint8)

    assert isinstance(image_encoder(box(84, 84, 4), "auto", 512), NatureCNN)
    assert isinstance(image_encoder(box(36, 36), "auto", 512), NatureCNN)
    assert isinstance(image_encoder(box(35, 35, 3), "auto", 512), SmallCNN)
    assert isinstance(image_encoder(box(4, 4), "auto", 512), SmallCNN)
    assert image_encoder(box(3, 9), "auto", 512) is None  # flattened into the MLP
    last, first = SmallCNN(box(7, 7, 3)), SmallCNN(box(3, 7, 7))
    first.load_state_dict(last.state_dict())
    frames = torch.randint(0, 256, (5, 7, 7, 3), dtype=torch.uint8)
    out = last(frames)
    assert out.shape == (5, 128) and last.features_dim == 128
    torch.testing.assert_close(first(frames.permute(0, 3, 1, 2)), out, rtol=0, atol=0)  # same net, either layout
    assert SmallCNN(box(5, 6), features=32)(torch.zeros(2, 5, 6, dtype=torch.uint8)).shape == (2, 32)
    with pytest.raises(ConfigError, match=r"small CNN needs images of at least 4×4 pixels, got 3×9"):
        SmallCNN(box(3, 9, 1), "last")


def test_a_plain_small_image_goes_to_the_small_cnn_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RunWarning)
        agent = PPO("toy_envs:proxrl_test/Image-v0", **SMALL)  # 8×8×3 uint8
    assert isinstance(agent.policy.encoder, SmallCNN)
    agent.learn(32)


def test_policy_mlp_takes_a_dict_of_an_image_beside_a_discrete_key_as_flat_values():
    agent, _ = _run_warnings(policy="mlp")
    encoder = agent.policy.encoder
    assert isinstance(encoder, DictEncoder) and not encoder.encoders and encoder.features_dim == 4 + 147
    rows = agent.envs.rollout.batch.obs[0]
    features = encoder(rows)
    assert features.dtype == torch.float32 and torch.equal(features[:, :4], torch.tensor([[0.0, 1, 0, 0]] * 2))
    assert features[:, 4:].max() <= 10  # the image's values, unscaled, as a flattened image always was


@pytest.mark.parametrize(("base", "hidden"), list(no_velocity.VELOCITY_INDICES.items()))
def test_a_novel_id_is_its_base_env_with_the_velocities_zeroed(base, hidden):
    novel = gym.make(no_velocity.no_velocity_id(base))
    full = gym.make(base)
    assert novel.observation_space == full.observation_space
    obs, _ = novel.reset(seed=3)
    ref, _ = full.reset(seed=3)
    for _ in range(5):
        assert np.all(obs[list(hidden)] == 0)
        kept = [i for i in range(obs.shape[0]) if i not in hidden]
        np.testing.assert_array_equal(obs[kept], ref[kept])
        action = full.action_space.sample()
        obs, *_ = novel.step(action)
        ref, *_ = full.step(action)
    assert np.any(ref[list(hidden)] != 0)  # the base env does move
    assert novel.spec.max_episode_steps == full.spec.max_episode_steps


@pytest.mark.parametrize("vectorization", ["auto", "sync"])  # auto: CartPole's native vector env
def test_hide_obs_zeroes_the_components_in_training_and_evaluation_as_the_novel_id(vectorization):
    venv, _ = make_vec_env("CartPole-v1", 3, seed=5, vectorization=vectorization, hide_obs=(1, 3))
    novel, _ = make_vec_env("CartPoleNoVel-v1", 3, seed=5)
    obs, ref = venv.reset(seed=5)[0], novel.reset(seed=5)[0]
    for _ in range(4):
        assert np.all(obs[:, [1, 3]] == 0) and np.any(obs[:, [0, 2]] != 0)
        if vectorization == "sync":  # (the native vector env draws its states from one generator)
            np.testing.assert_array_equal(obs, ref)
        actions = np.array([0, 1, 1])
        obs, ref = venv.step(actions)[0], novel.step(actions)[0]
    single = make_eval_env("CartPole-v1", hide_obs=(-1,))  # negative indices count from the end
    assert single.reset(seed=0)[0][3] == 0
    agent = PPO("CartPole-v1", hide_obs=(1, 3), **SMALL)
    agent.learn(32)
    assert torch.all(agent.envs.rollout.batch.obs[..., [1, 3]] == 0)


def test_hide_obs_that_cannot_apply_is_a_config_error():
    with pytest.raises(ConfigError, match=r"hide_obs=\[1, 4\]: indices \[4\] are outside the observation's 0..3"):
        PPO("CartPole-v1", hide_obs=(1, 4), **SMALL)
    with pytest.raises(ConfigError, match="hide_obs hides components of a flat Box observation"):
        PPO(GRID, hide_obs=(0,), **SMALL)
