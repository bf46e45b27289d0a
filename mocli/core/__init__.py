"""The data every layer above shares: rollouts and prepared batches, the explicit state an
estimator works with (``Work``), mergeable tallies and values spilled to disk."""
