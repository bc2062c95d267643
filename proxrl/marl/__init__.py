"""Multi-agent PPO's parts: loading PettingZoo envs by module path and the collectors that step N copies of a
parallel or turn-based (AEC) game into one batch schema ``[T, N, A, ...]`` under the library's rollout contract
(:mod:`.collectors`); the actors and critics for a method (:mod:`.networks`); the critic's value normalisation
(:mod:`.value_norm`); acting, team-return evaluation and games against random opponents (:mod:`.evaluation`)."""
