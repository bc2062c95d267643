"""Multi-agent PPO's parts: loading PettingZoo envs by module path and describing their agents (:mod:`.envs`); the
collector that steps N copies of a game into one batch schema ``[T, N, A, ...]`` under the library's rollout
contract (:mod:`.batch`, :mod:`.collector`), in a parallel game (:mod:`.parallel`) or a turn-based (AEC) one
(:mod:`.aec`); the actors and critics for a method (:mod:`.networks`); the critic's value normalisation
(:mod:`.value_norm`); acting, team-return evaluation and games against random opponents (:mod:`.evaluation`)."""
