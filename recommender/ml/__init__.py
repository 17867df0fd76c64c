"""Recommending: the algorithms (``algorithms.build_model``), what they read (``data``), splits, metrics,
evaluation and its report, MovieLens files, training, publishing runs to schema ``predictions`` (``publish``)
and the reasons shown beside each recommendation."""

# the reason beside a popular title recommended to a user without history; here, not in ``reasons``, so the
# HTTP API can give it without importing the algorithms
POPULAR_REASON = "popular with viewers"
