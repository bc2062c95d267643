"""Multi-agent data: loading PettingZoo envs by module path, and the collectors that step N copies of a parallel
or turn-based (AEC) game into one time-major batch schema ``[T, N, A, ...]`` (:mod:`.collectors`)."""
