"""A token-level critic for language-model policies: PPO for LMs (``advantage: gae``), to compare GRPO with and
without a critic on the same task. A linear value head reads the policy's last hidden states; the sequence reward
sits on each completion's last token; Â is GAE(γ, λ) along the completion (``advantages.gae``), normalised over
the completion tokens."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..advantages import gae, normalize
from ..objectives import token_mean


class TokenCritic:
    """V(prefix) = w · h_t + b on the hidden state h_t that predicts completion token t (zero-initialised)."""

    def __init__(self, hidden_size: int, device: torch.device, gamma: float, gae_lambda: float) -> None:
        self.head = nn.Linear(hidden_size, 1).to(device)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.gamma, self.gae_lambda = gamma, gae_lambda

    def parameters(self) -> list[nn.Parameter]:
        """The value head's weights (optimised with the policy's)."""
        return list(self.head.parameters())

    def values(self, hidden: Tensor) -> Tensor:
        """V of every position ``[B, L]`` from hidden states ``[B, L, H]``."""
        values: Tensor = self.head(hidden.float()).squeeze(-1)
        return values

    def advantages(self, rewards: Tensor, hidden: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(normalised Â ``[B, L]``, value targets ``[B, L]``) for sequence rewards ``[B]`` by token-level GAE."""
        with torch.no_grad():
            values = self.values(hidden) * mask
            lengths = mask.sum(1).long()
            last = torch.zeros_like(mask)
            last[torch.arange(mask.shape[0]), (lengths - 1).clamp(min=0)] = 1.0
            token_rewards = last * rewards.view(-1, 1)
            next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)
            done = last.bool() | ~mask.bool()
            # time-major for advantages.gae: [L, B]
            adv = gae(
                token_rewards.T,
                values.T,
                next_values.T,
                done.T,
                torch.zeros_like(done.T),
                gamma=self.gamma,
                gae_lambda=self.gae_lambda,
            ).T
            returns = adv + values
            return normalize(adv, mask.bool()) * mask, returns

    def loss(self, hidden: Tensor, returns: Tensor, mask: Tensor, num_tokens: Tensor) -> Tensor:
        """½ (V − R̂)² per completion token, summed over the micro-batch and divided by the batch's token count."""
        return token_mean(0.5 * (self.values(hidden) - returns) ** 2, mask, num_tokens)

    def state_dict(self) -> dict[str, Tensor]:
        """The value head's weights."""
        return self.head.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore :meth:`state_dict`."""
        self.head.load_state_dict(state)
