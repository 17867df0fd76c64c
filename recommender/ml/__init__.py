"""Recommending: the algorithms (``algorithms.build_model``), what they read (``data``), splits, metrics,
evaluation and its report, MovieLens files, training, publishing runs to schema ``predictions`` (``publish``)
and the reasons shown beside each recommendation."""
