"""proxrl's exceptions: :class:`ConfigError` for a user's mistake in a configuration (``proxrl.config`` re-exports
it), and the errors and warnings raised while training."""

from __future__ import annotations

from pathlib import Path


class ConfigError(ValueError):
    """A user's configuration is wrong; the message names the key and what is allowed."""


class NonFiniteError(FloatingPointError):
    """A loss, gradient or observation became NaN or infinite; the message says which and at what step."""


class EnvError(RuntimeError):
    """The environment raised inside ``step`` or ``reset``; the message carries the env's own traceback text
    (also from an async vector env's worker process) and the env step at which it happened."""


class ResumeWarning(UserWarning):
    """A resumed run could not put its envs back exactly where they were (their state lives in objects a
    checkpoint cannot hold): they start from a clean seeded reset instead, and the run says so once."""


class RunnersLostError(RuntimeError):
    """No runner returned a rollout in an iteration (each died, or exceeded ``sample_timeout_s``), or every runner
    used up its restarts; the message gives the counts and the settings to change."""


class PeerLostError(RuntimeError):
    """Another process of a data-parallel run stopped answering (it died, was killed, or timed out); the message
    says during which exchange, and how to resume."""


class Interrupted(KeyboardInterrupt):
    """Training stopped on SIGINT or SIGTERM after finishing its iteration and saving: ``checkpoint`` is the file
    or folder kept, ``step`` its step. A KeyboardInterrupt, so a script or notebook stops as it would on Ctrl-C."""

    def __init__(self, signal_name: str, step: int, checkpoint: Path) -> None:
        super().__init__(f"{signal_name}: stopped at step {step:,}, saved {checkpoint}")
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint


class RunWarning(UserWarning):
    """Something a user should know about a run that does not stop it (e.g. a call that has nothing to train)."""
