"""From loaded rollouts to advantages: the NaN policy, conditions and scheme (``prepare``),
the estimators over every training batch (``pipeline``) and the passes over a table split
into chunks (``stream``)."""
