"""Rollouts: the planner (pure), the use cases, and the rollout monitor (worker)."""
