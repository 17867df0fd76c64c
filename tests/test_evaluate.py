"""The evaluation harness: a model that learns beats popularity, which beats chance; reports get written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from test_movielens import LAYOUTS

from recommender.activity.simulate import Catalogue, SimulationConfig, affinity, simulate
from recommender.ml.algorithms import Recommender, build_model
from recommender.ml.evaluate import RESULT_COLUMNS, evaluate_models, model_factories, taste_score
from recommender.ml.report import LF_REFERENCE_ML100K, markdown_table, write_report
from recommender.ml.splits import stratified_split
from recommender.warehouse.targets import PROJECT_ROOT

GENRES = ["drama", "comedy", "horror", "documentation", "animation", "scifi", "romance", "war"]


class RandomModel(Recommender):
    """Chance: uniform random scores (the floor every model must clear)."""

    name = "random"

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self.rng = np.random.default_rng(0)

    def _scores(self, rows: np.ndarray, matrix_rows: sp.csr_matrix) -> np.ndarray:
        return self.rng.random((len(rows), self.matrix.shape[1]))


def clustered_interactions(
    n_users: int = 400, n_clusters: int = 4, per_cluster: int = 20, seed: int = 0
) -> pd.DataFrame:
    """Users who watch mostly their own cluster's items, the first items of each cluster most."""
    rng = np.random.default_rng(seed)
    n_items = n_clusters * per_cluster
    within = 1 / np.arange(1, per_cluster + 1)  # Zipf within a cluster: popularity carries some signal
    rows = []
    for user in range(n_users):
        cluster = user % n_clusters
        weights = np.full(n_items, 0.02)
        weights[cluster * per_cluster : (cluster + 1) * per_cluster] += within
        items = rng.choice(n_items, size=12, replace=False, p=weights / weights.sum())
        rows += [(user, int(item)) for item in items]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    train, test = stratified_split(clustered_interactions(), 0.75, by="user", seed=42)
    models = {
        "random": RandomModel,
        "popularity": lambda: build_model("popularity"),
        "ease": lambda: build_model("ease"),
    }
    return evaluate_models(models, train, test, k=10, score=lambda recs: {"listed": float(len(recs))})


def test_one_row_per_model_with_every_figure(results: pd.DataFrame) -> None:
    assert results.model.tolist() == ["random", "popularity", "ease"]
    assert list(results.columns) == [*RESULT_COLUMNS, "listed"]
    assert (results.users == 400).all()  # every user has test items
    assert (results.listed == 4000).all()  # the score hook saw ten items for each of them
    assert (
        results[["precision", "recall", "ndcg", "map", "coverage", "head_share"]]
        .apply(lambda c: c.between(0, 1))
        .all()
        .all()
    )
    assert (results[["fit_s", "recommend_s"]] >= 0).all().all()


def test_repeated_fits_time_each_model_as_often_and_keep_its_figures(results: pd.DataFrame) -> None:
    train, test = stratified_split(clustered_interactions(), 0.75, by="user", seed=42)
    fits = []

    def counted() -> Recommender:
        fits.append(1)
        return build_model("ease")

    again = evaluate_models({"ease": counted}, train, test, k=10, repeats=3)
    assert len(fits) == 3
    figures = ["precision", "recall", "ndcg", "map", "coverage"]
    pd.testing.assert_frame_equal(again[figures], results.loc[results.model == "ease", figures].reset_index(drop=True))
    with pytest.raises(ValueError, match="repeats must be 1 or more, got 0"):
        evaluate_models({"ease": counted}, train, test, repeats=0)


def test_a_learning_model_beats_popularity_which_beats_chance(results: pd.DataFrame) -> None:
    by_model = results.set_index("model")
    for metric in ("precision", "recall", "ndcg", "map"):
        assert by_model.loc["ease", metric] > 1.5 * by_model.loc["popularity", metric], metric
        assert by_model.loc["popularity", metric] > by_model.loc["random", metric], metric


def test_popularity_leans_on_the_head_and_chance_covers_the_catalogue(results: pd.DataFrame) -> None:
    by_model = results.set_index("model")
    assert by_model.loc["popularity", "popularity_lift"] > by_model.loc["ease", "popularity_lift"]
    assert by_model.loc["popularity", "popularity_lift"] > by_model.loc["random", "popularity_lift"]
    assert by_model.loc["random", "coverage"] == 1.0
    assert by_model.loc["popularity", "coverage"] < 0.5


def test_report_has_the_table_the_reference_and_a_chart(results: pd.DataFrame, tmp_path: Path) -> None:
    md_path, png_path = write_report(results, tmp_path / "out", "Synthetic clusters", "Protocol: a test.")
    assert (md_path.name, png_path.name) == ("synthetic-clusters.md", "synthetic-clusters.png")
    text = md_path.read_text()
    assert text.startswith("# Synthetic clusters\n\nProtocol: a test.")
    assert markdown_table(results) in text
    assert "| BiVAE | 0.411 | 0.472 |" in text and "| Spark ALS | 0.043 | — |" in text
    assert f"![Synthetic clusters]({png_path.name})" in text
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png_path.stat().st_size > 10_000


def test_lf_reference_figures() -> None:
    reference = LF_REFERENCE_ML100K.set_index("algorithm")
    assert reference.loc["BiVAE", "precision@10"] == 0.411
    assert reference.loc["SAR", "ndcg@10"] == 0.394


def test_model_factories_pass_features_and_skip_what_cannot_be_built() -> None:
    features = pd.DataFrame({"genres": [["a"], ["b"]]}, index=pd.Index([1, 2]))
    factories, skipped = model_factories(["ease", "content"])
    assert list(factories) == ["ease"] and "features" in skipped["content"]
    factories, skipped = model_factories(["ease", "content"], features)
    assert list(factories) == ["ease", "content"] and not skipped
    assert factories["content"]() is not factories["content"]()  # a new model each time
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        model_factories(["nope"])


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 300
    features = pd.DataFrame(
        {
            "content_id": [f"tm{1000 + i}" for i in range(n)],
            "is_show": 0,
            "runtime_minutes": np.where(np.arange(n) < n - 5, 100, 0),  # five titles are never watched
            "years_before_latest": rng.integers(0, 30, n),
            "imdb_score_filled": rng.uniform(4, 9, n).round(1),
            "log_imdb_votes": rng.uniform(3, 13, n).round(3),
            "genre_ids": [list(rng.choice(GENRES, size=rng.integers(1, 3), replace=False)) for _ in range(n)],
            "country_codes": [list(rng.choice(["US", "GB", "IN", "KR"], size=1)) for _ in range(n)],
        }
    )
    simulation = simulate(features, SimulationConfig(users=400, days=30, seed=4))
    events = simulation.events.rename(columns={"content_id": "item_id"})[["user_id", "item_id"]].drop_duplicates()
    return features, simulation.truth, events


def oracle(truth: pd.DataFrame, features: pd.DataFrame, k: int) -> pd.DataFrame:
    catalogue = Catalogue.from_features(features)
    genre = truth[[f"genre_{g}" for g in catalogue.genres]].to_numpy(np.float32)
    country = truth[[f"country_{c}" for c in catalogue.countries]].to_numpy(np.float32)
    best = np.argsort(-affinity(genre, country, catalogue), axis=1)[:, :k]
    return pd.DataFrame(
        {
            "user_id": np.repeat(truth.user_id.to_numpy(), k),
            "item_id": catalogue.content_ids[best.ravel()],
            "rank": np.tile(np.arange(1, k + 1), len(truth)),
        }
    )


def test_taste_score_is_one_for_an_oracle_and_well_below_for_chance(
    simulated: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    features, truth, events = simulated
    assert taste_score(oracle(truth, features, 10), truth, features, k=10) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    chance = pd.DataFrame(
        {
            "user_id": np.repeat(truth.user_id.to_numpy(), 10),
            "item_id": np.concatenate([rng.choice(features.content_id, 10, replace=False) for _ in range(len(truth))]),
            "rank": np.tile(np.arange(1, 11), len(truth)),
        }
    )
    assert taste_score(chance, truth, features, k=10) < 0.6
    # the best unseen titles are no better than the best titles: against them the oracle can only score higher
    assert taste_score(oracle(truth, features, 10), truth, features, k=10, seen=events) >= 1.0


def test_taste_score_ranks_a_fitted_model_above_chance(
    simulated: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    features, truth, events = simulated
    train = events.assign(weight=1.0)
    users = truth.user_id
    ease = build_model("ease").fit(train).recommend(users, k=10)
    chance = RandomModel().fit(train).recommend(users, k=10)
    assert (
        taste_score(ease, truth, features, k=10, seen=train)
        > taste_score(chance, truth, features, k=10, seen=train) + 0.1
    )


def test_taste_score_refuses_tastes_of_another_catalogue(
    simulated: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    features, truth, _ = simulated
    with pytest.raises(ValueError, match="another catalogue"):
        taste_score(oracle(truth, features, 10), truth.drop(columns="genre_war"), features)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recommender", *args], cwd=PROJECT_ROOT, capture_output=True, text=True
    )


def test_the_command_line_evaluates_a_movielens_file(tmp_path: Path) -> None:
    ratings = clustered_interactions(n_users=120).assign(rating=4, timestamp=lambda f: 880_000_000 + f.index)
    ratings.to_csv(tmp_path / "u.data", sep="\t", header=False, index=False)
    out = tmp_path / "report"
    result = _cli(
        "evaluate", "--movielens", str(tmp_path / "u.data"), "--models", "popularity, ease,content", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "| ease |" in result.stdout and "| popularity |" in result.stdout
    assert "skipped content: the content model needs features" in result.stdout  # no u.item beside u.data
    assert (out / "movielens-evaluation.md").is_file()
    assert (out / "movielens-evaluation.png").stat().st_size > 0
    missing = _cli("evaluate", "--movielens", str(tmp_path / "missing.data"))
    assert missing.returncode == 2 and "missing.data: no such file or folder" in missing.stderr


def test_the_datasets_sweep_makes_one_table_over_every_layout(tmp_path: Path) -> None:
    ratings = clustered_interactions(n_users=80).assign(rating=4.0, timestamp=lambda f: 880_000_000 + f.index)
    rows = list(ratings[["user_id", "item_id", "rating", "timestamp"]].itertuples(index=False, name=None))
    files = []
    for name, write in LAYOUTS.items():
        (tmp_path / name.replace(".", "_")).mkdir()
        files.append(tmp_path / name.replace(".", "_") / name)
        files[-1].write_text(write(rows), encoding="utf-8")
    out = tmp_path / "report"
    result = _cli("evaluate", "--datasets", *map(str, files), "--models", "default,ease,popularity", "--out", str(out))
    assert result.returncode == 0, result.stderr
    table = (out / "datasets.md").read_text(encoding="utf-8")
    for file in files:
        for model in ("default", "ease", "popularity"):
            assert f"| {file.name} | stratified 75%/25% by item, seed 42 | {model} |" in table
    assert "leave-last-out" not in table  # several data sets: the protocol asked for only
    assert table.count("EASE l2") == len(files)  # what the default chose, per data set

    single = _cli("evaluate", "--datasets", str(files[0]), "--models", "default_untuned,als", "--out", str(out))
    assert single.returncode == 0, single.stderr
    assert f"| {files[0].name} | leave-last-out | als | " in single.stdout
    assert f"| {files[0].name} | leave-last-out | default_untuned | " in single.stdout
