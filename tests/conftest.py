import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
# Ray reads these when it is imported: a one-node cluster started by a test binds to 127.0.0.1 only and reports
# nothing; its workers import the modules of tests/ (toy and failing envs)
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["RAY_AUTH_MODE"] = "disabled"  # no token written to ~/.ray for a throwaway loopback cluster
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p)
import toy_envs  # noqa: E402,F401  registers proxrl_test/* envs
from proxrl.devices import limit_threads  # noqa: E402

limit_threads(1)  # torch and numpy's BLAS: one thread each, so that xdist's workers do not spin on each other


@pytest.fixture
def tiny_ppo():
    """Keyword overrides for a PPO run of a few small iterations."""
    return dict(num_envs=2, num_steps=16, num_minibatches=2, num_epochs=2, tensorboard=False, hidden_sizes=(16,))


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster (2 CPUs) for the session's Ray tests, on loopback only (see the variables above),
    without the dashboard; shut down at the end of the session."""
    ray = pytest.importorskip("ray")
    assert ray._private.ray_constants.ENABLE_RAY_CLUSTER is False, "ray was imported before conftest set its env"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
