"""``recording_games.SoloBandit`` by module path (PettingZoo's ``parallel_env()`` convention)."""

from recording_games import SoloBandit


def parallel_env() -> SoloBandit:
    return SoloBandit()
