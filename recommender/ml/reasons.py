"""Short human-readable reasons for recommendations: the watched title or the genre behind each one.

For a user with history, the reason is the watched title most similar to the
recommended one (cosine similarity of the two titles' audiences in the training
interactions); where no watched title shares any audience with it, the recommended
title's genre the user watched most; users without history get "popular with viewers".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.ml import POPULAR_REASON as POPULAR
from recommender.ml.algorithms.base import BATCH_USERS, Recommender


def audience_similarity(matrix: sp.csr_matrix) -> np.ndarray:
    """Items x items cosine similarity of the binary users x items ``matrix`` (float32, dense)."""
    binary = (matrix > 0).astype(np.float32)
    norms = np.sqrt(np.asarray(binary.sum(axis=0)).ravel())
    scaled = binary @ sp.diags(1 / np.maximum(norms, 1e-12))
    return np.asarray((scaled.T @ scaled).toarray(), dtype=np.float32)


def explain(
    model: Recommender, recs: pd.DataFrame, titles: pd.Series, title_genres: pd.Series, genre_names: pd.Series
) -> pd.Series:
    """One reason per row of ``recs`` (user_id, item_id), aligned on its index.

    ``model`` is the fitted model (its user/item indexes and interaction matrix),
    ``titles`` maps item id -> title, ``title_genres`` item id -> list of genre ids,
    ``genre_names`` genre id -> display name.
    """
    similarity = audience_similarity(model.matrix)
    users = model.user_index.get_indexer(recs["user_id"])
    items = model.item_index.get_indexer(recs["item_id"])
    because = np.full(len(recs), -1, dtype=np.int64)  # item index of the watched title behind each row
    known = np.flatnonzero((users >= 0) & (items >= 0))
    for begin in range(0, len(known), BATCH_USERS * 20):
        rows = known[begin : begin + BATCH_USERS * 20]
        because[rows] = _most_similar_seen(model.matrix, similarity, users[rows], items[rows])
    reasons = pd.Series(POPULAR, index=recs.index, dtype=object)
    watched = because >= 0
    watched_titles = titles.reindex(model.item_index[because[watched]]).fillna("a title you watched").to_numpy()
    reasons[watched] = ("because you watched " + pd.Series(watched_titles, dtype=object)).to_numpy()
    by_genre = np.flatnonzero(~watched & (users >= 0))
    if len(by_genre):
        reasons.iloc[by_genre] = _favourite_genres(model, recs.iloc[by_genre], title_genres, genre_names)
    return reasons


def _most_similar_seen(
    matrix: sp.csr_matrix, similarity: np.ndarray, users: np.ndarray, items: np.ndarray
) -> np.ndarray:
    """For each (user, item) pair, the user's seen item most similar to the item, or -1 if none is similar at all."""
    starts, ends = matrix.indptr[users], matrix.indptr[users + 1]
    lengths = ends - starts
    pair = np.repeat(np.arange(len(users)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    seen = matrix.indices[np.repeat(starts, lengths) + offsets]
    values = similarity[items[pair], seen]
    best = np.full(len(users), -1, dtype=np.int64)
    if not len(values):
        return best
    # per pair, the seen item with the highest similarity: sort by (pair, value) and take each pair's last
    order = np.lexsort((values, pair))
    last = np.flatnonzero(np.diff(np.append(pair[order], len(users))) != 0)
    winners = order[last]
    positive = values[winners] > 0
    best[pair[winners][positive]] = seen[winners][positive]
    return best


def _favourite_genres(
    model: Recommender, recs: pd.DataFrame, title_genres: pd.Series, genre_names: pd.Series
) -> np.ndarray:
    """Per row, "popular in <genre>": the recommended title's genre the user has watched most."""
    seen = model.matrix[model.user_index.get_indexer(recs["user_id"].unique())]
    watched = pd.DataFrame(
        {
            "user_id": np.repeat(recs["user_id"].unique(), np.diff(seen.indptr)),
            "genre_id": title_genres.reindex(model.item_index[seen.indices]).to_numpy(),
        }
    ).explode("genre_id")
    counts = watched.dropna().value_counts().rename("n").reset_index()
    wanted = (
        recs[["user_id", "item_id"]]
        .assign(genre_id=title_genres.reindex(recs["item_id"]).to_numpy(), row=np.arange(len(recs)))
        .explode("genre_id")
        .merge(counts, on=["user_id", "genre_id"], how="left")
        .sort_values(["row", "n"], ascending=[True, False], na_position="last")
        .drop_duplicates("row")
        .sort_values("row")
    )
    # a genre counts only if the user watched it; otherwise the title is simply popular
    names = wanted["genre_id"].map(genre_names).where(wanted["n"].notna())
    return np.where(names.notna(), "popular in " + names.fillna("").str.lower(), POPULAR)
