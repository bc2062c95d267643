"""The Nature CNN's cost on this CPU in four forms, to decide what its path uses (issue 17): torch's default
(contiguous NCHW) input, channels-last input (what ``NatureCNN.forward`` does on the CPU), ``torch.compile``
of the encoder and a head over channels-last input, and the encoder under bf16 autocast with a float32 head
(``cnn_precision=bfloat16``).

Measured per form: one PPO minibatch step (forward, backward, Adam) on 256 Atari frames ``[4, 84, 84]`` uint8, and
one acting forward on 8 frames (8 envs), both with the heads of a 6-action policy. The forms alternate within each
round; medians over the rounds. Compile time is reported on its own.

    python benchmarks/cnn_layouts.py [--threads 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from proxrl.policies.encoders import NatureCNN


def _timed(step: Callable[[], None], repeats: int) -> float:
    step()  # warm-up (oneDNN picks its kernels on the first call)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    """Print the table (markdown) of medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    encoder = NatureCNN(space)
    model = torch.nn.Sequential(encoder, torch.nn.Linear(512, 7))
    adam = torch.optim.Adam(model.parameters(), lr=2.5e-4)
    batch = torch.randint(0, 256, (256, 4, 84, 84), dtype=torch.uint8)
    acting = batch[:8].clone()

    def scaled(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
        x = x.float() / 255
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    def trunk(x: torch.Tensor) -> torch.Tensor:  # the encoder's layers without forward's own layout choice
        return model[1](encoder.linear(encoder.convs(x)))

    def bf16_trunk(x: torch.Tensor) -> torch.Tensor:  # cnn_precision=bfloat16: the encoder under autocast, heads fp32
        with torch.autocast("cpu", dtype=torch.bfloat16):
            features = encoder.linear(encoder.convs(x))
        return model[1](features.float())

    compiled = torch.compile(trunk)
    start = time.perf_counter()
    compiled(scaled(batch, True)).sum().backward()
    compile_seconds = time.perf_counter() - start
    forms: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], bool]] = {
        "contiguous (NCHW)": (trunk, False),
        "channels-last": (trunk, True),
        "torch.compile + channels-last": (compiled, True),
        "bf16 autocast + channels-last (cnn_precision=bfloat16)": (bf16_trunk, True),
    }
    train: dict[str, list[float]] = {name: [] for name in forms}
    act: dict[str, list[float]] = {name: [] for name in forms}
    for _ in range(args.rounds):
        for name, (net, channels_last) in forms.items():

            def update() -> None:
                adam.zero_grad()
                net(scaled(batch, channels_last)).pow(2).mean().backward()  # noqa: B023
                adam.step()

            def forward() -> None:
                with torch.no_grad():
                    net(scaled(acting, channels_last))  # noqa: B023

            train[name].append(_timed(update, 6))
            act[name].append(_timed(forward, 100))
    base = statistics.median(train["contiguous (NCHW)"])
    print(f"torch {torch.__version__}, {args.threads} threads, {args.rounds} rounds; compile: {compile_seconds:.1f} s")
    print("| form | minibatch step (256 frames) | vs contiguous | acting forward (8 frames) |")
    print("|---|---|---|---|")
    for name in forms:
        t, a = statistics.median(train[name]), statistics.median(act[name])
        print(f"| {name} | {t * 1000:.0f} ms | {base / t:.2f}× | {a * 1000:.2f} ms |")


if __name__ == "__main__":
    main()
