"""Observation encoders: the Nature CNN (shapes, init, scaling, channel order), uint8 storage, the automatic choice,
Dict observations, a user's own module, and what the fast paths do with them."""

import math
import warnings

import numpy as np
import pytest
import torch
from gymnasium import spaces

from proxrl import PPO, ConfigError
from proxrl.envs.flat_dict import DictLayout
from proxrl.errors import RunWarning
from proxrl.policies.encoders import DictEncoder, NatureCNN, build_encoder, channels_first

SMALL = dict(num_envs=2, num_steps=16, num_minibatches=2, hidden_sizes=(), progress=False, tensorboard=False)
PIXELS = "toy_envs:proxrl_test/PixelTarget-v0"


@pytest.mark.parametrize("shape", [(84, 84, 4), (4, 84, 84), (84, 84)])
def test_nature_cnn_shapes_and_orthogonal_init(shape):
    cnn = NatureCNN(spaces.Box(0, 255, shape, np.uint8))
    convs = [m for m in cnn.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (32, (8, 8), (4, 4)),
        (64, (4, 4), (2, 2)),
        (64, (3, 3), (1, 1)),
    ]
    assert convs[0].in_channels == (1 if len(shape) == 2 else 4)
    linear = cnn.linear[0]
    assert linear.in_features == 64 * 7 * 7 and linear.out_features == 512 == cnn.features_dim
    w = linear.weight.detach()  # orthogonal with gain √2: the 512 × 3136 rows are orthogonal, each of norm √2
    torch.testing.assert_close(w @ w.T, 2 * torch.eye(512), atol=1e-4, rtol=0)
    assert all(torch.count_nonzero(m.bias) == 0 for m in [*convs, linear])
    x = torch.randint(0, 256, (3, *shape), dtype=torch.uint8)
    assert cnn(x).shape == (3, 512)


def test_uint8_frames_are_scaled_by_1_over_255_and_the_channel_order_does_not_matter():
    last = NatureCNN(spaces.Box(0, 255, (36, 36, 3), np.uint8))
    first = NatureCNN(spaces.Box(0, 255, (3, 36, 36), np.uint8))
    first.load_state_dict(last.state_dict())
    frames = torch.randint(0, 256, (5, 36, 36, 3), dtype=torch.uint8)
    out = last(frames)
    torch.testing.assert_close(first(frames.permute(0, 3, 1, 2)), out)
    as_float = NatureCNN(spaces.Box(0.0, 1.0, (36, 36, 3), np.float32))  # float images are taken as they are
    as_float.load_state_dict(last.state_dict())
    torch.testing.assert_close(as_float(frames.float() / 255), out)


def test_channel_order_is_detected_or_the_ambiguity_named():
    assert channels_first((4, 84, 84)) and not channels_first((84, 84, 3)) and not channels_first((84, 84))
    assert channels_first((3, 3, 3), "first") and not channels_first((3, 3, 3), "last")
    for shape in ((3, 36, 3), (36, 36, 36)):
        with pytest.raises(ConfigError, match="set image_channels=first"):
            channels_first(shape)


def test_ppo_stores_image_rollouts_as_uint8_and_picks_the_cnn_itself():
    agent = PPO(PIXELS, **SMALL)
    assert isinstance(agent.policy.encoder, NatureCNN)
    agent.learn(32)
    batch = agent.envs.rollout.batch
    assert batch.obs.dtype == torch.uint8 and batch.obs.shape == (16, 2, 36, 36, 1)
    assert int(batch.obs.max()) == 255  # raw pixels, not scaled in the buffer
    # an Atari-sized rollout (128 steps × 8 envs of 4 × 84 × 84) is 28.9 MB as uint8 (float32 would be 115.6 MB)
    assert 128 * 8 * 4 * 84 * 84 * batch.obs.element_size() == 28_901_376


def test_the_policy_choice_is_explicit_where_auto_cannot_apply():
    with pytest.warns(RunWarning, match="look like images"):
        agent = PPO(PIXELS, policy="mlp", **SMALL)  # forced: flattened, and said
    assert agent.policy.encoder is None
    with pytest.raises(ConfigError, match="policy=cnn needs image observations"):
        PPO("CartPole-v1", policy="cnn", **SMALL)
    with pytest.raises(ConfigError, match="at least 36×36 pixels, got 8×8"):
        PPO("toy_envs:proxrl_test/Image-v0", policy="cnn", **SMALL)
    with pytest.raises(ConfigError, match="norm_obs=true normalises raw observations"):
        PPO(PIXELS, norm_obs=True, **SMALL)
    with pytest.raises(ConfigError, match="policy=custom needs features_extractor"):
        PPO("CartPole-v1", policy="custom", **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert PPO("CartPole-v1", **SMALL).policy.encoder is None  # vectors: the MLP, no warning


def test_dict_observations_get_one_encoder_per_key_concatenated():
    agent = PPO("toy_envs:proxrl_test/PixelTargetDict-v0", **SMALL)
    encoder = agent.policy.encoder
    assert isinstance(encoder, DictEncoder) and encoder.features_dim == 256 + 3
    assert isinstance(encoder.encoders["image"], NatureCNN) and list(encoder.encoders) == ["image"]
    # the env's flat row: the image's 36·36 uint8 values, then the float32 vector's 3 × 4 bytes (keys in order)
    dict_space = encoder.layout.space
    layout = DictLayout(dict_space)
    obs = [dict_space.sample() for _ in range(2)]
    flat = torch.as_tensor(np.stack([layout.flatten(o) for o in obs]))
    assert flat.dtype == torch.uint8 and flat.shape == (2, 1296 + 12)
    features = encoder(flat)
    images = torch.as_tensor(np.stack([o["image"] for o in obs]))
    vectors = torch.as_tensor(np.stack([o["vector"] for o in obs]))
    torch.testing.assert_close(features[:, :256], encoder.encoders["image"](images), rtol=0, atol=0)
    torch.testing.assert_close(features[:, 256:], vectors, rtol=0, atol=0)  # the float32 vector comes back exact
    agent.learn(32)
    stored = agent.envs.rollout.batch.obs
    assert stored.dtype == torch.uint8 and stored.shape == (16, 2, 1296 + 12)  # the image is not stored as float32
    # predict takes the env's rows, one dict, or a dict of batches (as SB3's predict takes dicts)
    rows = flat.numpy()
    batched = {"image": images.numpy(), "vector": vectors.numpy()}
    np.testing.assert_array_equal(agent.predict(batched), agent.predict(rows))
    assert agent.predict(obs[1]) == agent.predict(rows[1])


def test_a_dict_row_keeps_every_key_exact_in_either_layout():
    image = spaces.Box(0, 255, (6, 6, 1), np.uint8)
    mixed = spaces.Dict(
        {
            "image": image,
            "pos": spaces.Box(-2.0, 2.0, (2, 3), np.float64),
            "mode": spaces.Discrete(4, start=1),
            "flags": spaces.MultiBinary(3),
        },
        seed=0,
    )
    vectors = spaces.Dict({"pos": spaces.Box(-1.0, 1.0, (2,), np.float32), "mode": spaces.Discrete(3)}, seed=1)
    images = spaces.Dict({"a": image, "b": image}, seed=2)
    for space, packed in ((mixed, True), (vectors, False), (images, False)):
        layout = DictLayout(space)
        assert layout.packed is packed
        if not packed:  # gymnasium's own flatten
            assert layout.flat_space == spaces.flatten_space(space)
        obs = [space.sample() for _ in range(3)]
        rows = np.stack([layout.flatten(o) for o in obs])
        assert rows.shape == (3, *layout.flat_space.shape) and rows.dtype == layout.flat_space.dtype
        back = layout.unflatten(torch.as_tensor(rows))
        for key, sub in space.spaces.items():
            if isinstance(sub, spaces.Discrete):
                expected = np.eye(sub.n)[[o[key] - sub.start for o in obs]]
            else:
                expected = np.stack([o[key] for o in obs]).astype(np.float32)
            np.testing.assert_array_equal(back[key].float().numpy(), expected.reshape(back[key].shape), err_msg=key)
        if packed:
            assert back["image"].dtype == torch.uint8 and rows.dtype == np.uint8
            # a row that went through a float tensor (as a user's batch might) comes back exact too
            again = layout.unflatten(torch.as_tensor(rows).float())
            torch.testing.assert_close(again["pos"], back["pos"], rtol=0, atol=0)
    # policy=mlp on the bytes layout: the row taken apart, every key flattened as float32 values (no CNN)
    flat_keys = build_encoder(DictLayout(mixed).flat_space, "mlp", dict_space=mixed)
    assert isinstance(flat_keys, DictEncoder) and not flat_keys.encoders and flat_keys.features_dim == 36 + 6 + 4 + 3
    back = DictLayout(mixed).unflatten(torch.as_tensor(rows))
    expected = torch.cat([back[k].reshape(3, -1).float() for k in mixed.spaces], dim=1)
    torch.testing.assert_close(flat_keys(torch.as_tensor(rows)), expected, rtol=0, atol=0)


def test_a_users_module_on_a_dict_space_gets_each_keys_values():
    agent = PPO("toy_envs:proxrl_test/PixelTargetDict-v0", features_extractor="toy_envs:DictKeysExtractor", **SMALL)
    seen = agent.policy.encoder.module.seen
    assert seen and seen[-1] == {"image": ((2, 36, 36, 1), torch.uint8), "vector": ((2, 3), torch.float32)}
    agent.learn(32)


def test_a_users_module_gets_the_heads_and_trains_saves_and_loads(tmp_path):
    agent = PPO(
        "CartPole-v1", features_extractor="toy_envs:TinyExtractor", features_extractor_kwargs={"out": 5}, **SMALL
    )
    assert type(agent.policy.encoder).__name__ == "TinyExtractor" and agent.policy.encoder.features_dim == 5
    assert agent.policy.actor_head[0].in_features == 5
    before = [p.detach().clone() for p in agent.policy.parameters()]
    agent.learn(64)
    assert all(not torch.equal(a, b) for a, b in zip(before, agent.policy.parameters(), strict=True))
    agent.save(tmp_path / "m.pt")
    loaded = PPO.load(tmp_path / "m.pt")
    obs = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))
    with pytest.raises(ConfigError, match="cannot be imported"):
        PPO("CartPole-v1", features_extractor="toy_envs:NoSuchNet", **SMALL)
    with pytest.raises(ConfigError, match="must be 'module:Class'"):
        PPO("CartPole-v1", features_extractor="TinyExtractor", **SMALL)


def test_build_encoder_checks_the_users_output_shape():
    space = spaces.Box(-1, 1, (4,), np.float32)
    with pytest.raises(ConfigError, match=r"must map \[B, \.\.\.\] to \[B, F\]"):
        build_encoder(space, "custom", features_extractor="toy_envs:SumExtractor")
    assert math.isclose(build_encoder(space, "custom", features_extractor="toy_envs:TinyExtractor").features_dim, 8)


def test_a_features_extractor_class_object_works_in_python_and_names_itself_in_the_config(tmp_path):
    class Local(torch.nn.Module):  # defined where no import path reaches it (as in a notebook)
        def __init__(self, observation_space, width=6):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(observation_space.shape[0], width), torch.nn.ReLU())

        def forward(self, obs):
            return self.net(obs.float())

    agent = PPO("CartPole-v1", features_extractor=Local, features_extractor_kwargs={"width": 6}, **SMALL)
    assert agent.config.features_extractor.endswith(
        ":test_a_features_extractor_class_object_works_in_python_and_names_itself_in_the_config.<locals>.Local"
    )
    assert agent.policy.encoder.features_dim == 6
    agent.learn(32)
    assert PPO.load(agent.save(tmp_path / "m.pt")).policy.encoder.features_dim == 6  # same process: found


def test_the_cnn_leaves_its_input_alone_and_gives_the_same_features_in_either_layout():
    """The CPU path converts to channels-last and scales in place only a copy it made itself."""
    torch.manual_seed(0)
    cnn = NatureCNN(spaces.Box(0, 255, (4, 36, 36), np.uint8))
    frames = torch.randint(0, 256, (3, 4, 36, 36), dtype=torch.uint8)
    as_float = frames.float()  # a float batch of 0-255 values (predict's path) must not be scaled in place
    keep = as_float.clone()
    out_u8, out_f = cnn(frames), cnn(as_float)
    assert torch.equal(as_float, keep)
    assert torch.allclose(out_u8, out_f, atol=1e-6)
    last = NatureCNN(spaces.Box(0, 255, (36, 36, 4), np.uint8))
    last.load_state_dict(cnn.state_dict())
    assert torch.allclose(last(frames.permute(0, 2, 3, 1)), out_u8, atol=1e-5)


def test_cnn_precision_bfloat16_runs_the_convs_in_bf16_and_keeps_weights_heads_and_ratio_in_float32(tmp_path):
    """Mixed precision as torch's autocast does it: bf16 convs and 512-unit layer over float32 master weights; the
    heads get float32 features, so log-probabilities (and PPO's ratio) are float32 and depend on the batch they are
    computed in (acting on 2 envs, updating on a minibatch) only by float32 rounding."""
    torch.manual_seed(0)
    agent = PPO(PIXELS, cnn_precision="bfloat16", **SMALL)
    cnn = agent.policy.encoder
    seen: list[torch.dtype] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
        for m in cnn.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    agent.learn(32)
    for h in hooks:
        h.remove()
    assert seen and set(seen) == {torch.bfloat16}  # every conv and the 512-unit layer, acting and update
    assert all(
        p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32
        for p in agent.policy.parameters()
        if p.requires_grad
    )
    obs = agent.envs.rollout.batch.obs.flatten(0, 1)
    features = cnn(obs)
    assert features.dtype == torch.float32
    cnn.compute_dtype = torch.float32
    exact = cnn(obs)
    cnn.compute_dtype = torch.bfloat16
    assert not torch.equal(features, exact) and torch.allclose(features, exact, rtol=0.05, atol=0.05)
    actions = agent.envs.rollout.batch.actions.flatten(0, 1)
    with torch.no_grad():
        whole = agent.policy.evaluate(obs, actions)[0]
        parts = torch.cat([agent.policy.evaluate(obs[i : i + 2], actions[i : i + 2])[0] for i in range(0, len(obs), 2)])
    # float32 heads: batch-size rounding only (MKL's AVX-512 GEMM blocks a 32-row and a 2-row product differently,
    # ~6e-8 here; equal on an AVX2 EPYC), where bf16 heads would differ by ~1e-2
    assert whole.dtype == torch.float32 and torch.allclose(whole, parts, rtol=0, atol=1e-6)
    loaded = PPO.load(agent.save(tmp_path / "m.pt"))
    assert loaded.config.cnn_precision == "bfloat16" and loaded.policy.encoder.compute_dtype == torch.bfloat16


def test_cnn_precision_bfloat16_without_a_cnn_is_refused():
    with pytest.raises(ConfigError, match="cnn_precision=bfloat16 applies to the Nature CNN"):
        PPO("CartPole-v1", cnn_precision="bfloat16", **SMALL)
