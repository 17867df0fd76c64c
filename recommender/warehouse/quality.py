"""Great Expectations suites for the raw tables and the marts, run after ``dbt build``.

dbt's tests guard the models' logic; these suites state what the data itself
must look like where people meet it: the export as delivered, and the marts
analysts and models read. The run writes Data Docs under ``target/refresh/gx`` and fails
with a readable list of every failed expectation.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

from recommender.errors import BadInputError
from recommender.warehouse.identifiers import CONTENT_ID_PATTERN
from recommender.warehouse.targets import Target

PYTHON_LIST = r"^\[.*\]$"
YEARS = {"min_value": 1900, "max_value": 2030}
SCORE = {"min_value": 0, "max_value": 10}


def _best_list(*extra: gxe.Expectation) -> list[gxe.Expectation]:
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="title"),
        gxe.ExpectColumnValuesToBeBetween(column="release_year", **YEARS),
        gxe.ExpectColumnValuesToBeBetween(column="score", **SCORE),
        gxe.ExpectColumnValuesToNotBeNull(column="main_production"),
        *extra,
    ]


def suites() -> dict[tuple[str, str], list[gxe.Expectation]]:
    """Expectations per (schema, table). Raw: as delivered; marts: as analysts and models read them."""
    return {
        ("raw", "raw_titles"): [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToBeUnique(column="id"),
            gxe.ExpectColumnValuesToMatchRegex(column="id", regex=CONTENT_ID_PATTERN),
            gxe.ExpectColumnValuesToBeInSet(column="type", value_set=["MOVIE", "SHOW"]),
            gxe.ExpectColumnValuesToBeBetween(column="release_year", **YEARS),
            gxe.ExpectColumnValuesToBeBetween(column="runtime", min_value=0, max_value=1000),
            gxe.ExpectColumnValuesToMatchRegex(column="genres", regex=PYTHON_LIST),
            gxe.ExpectColumnValuesToMatchRegex(column="production_countries", regex=PYTHON_LIST),
            gxe.ExpectColumnValuesToBeBetween(column="imdb_score", **SCORE),
            gxe.ExpectColumnValuesToMatchRegex(column="imdb_id", regex="^tt[0-9]+$"),
        ],
        ("raw", "raw_credits"): [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="person_id"),
            gxe.ExpectColumnValuesToMatchRegex(column="id", regex=CONTENT_ID_PATTERN),
            gxe.ExpectColumnValuesToNotBeNull(column="name"),
            gxe.ExpectColumnValuesToBeInSet(column="role", value_set=["ACTOR", "DIRECTOR"]),
        ],
        ("raw", "raw_best_movies"): _best_list(
            gxe.ExpectColumnValuesToBeBetween(column="number_of_votes", min_value=1)
        ),
        ("raw", "raw_best_shows"): _best_list(
            gxe.ExpectColumnValuesToBeBetween(column="number_of_seasons", min_value=1)
        ),
        ("raw", "raw_best_movie_by_year"): _best_list(gxe.ExpectColumnValuesToBeUnique(column="release_year")),
        ("raw", "raw_best_show_by_year"): _best_list(gxe.ExpectColumnValuesToBeUnique(column="release_year")),
        ("marts", "catalogue"): [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToBeUnique(column="content_id"),
            gxe.ExpectColumnValuesToBeInSet(column="content_type", value_set=["movie", "show"]),
            gxe.ExpectColumnValuesToBeBetween(column="imdb_score", **SCORE),
            gxe.ExpectColumnValuesToBeBetween(column="release_decade", min_value=1900, max_value=2030),
            gxe.ExpectColumnValuesToBeBetween(column="cast_size", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="best_of_rank", min_value=1),
        ],
        ("marts", "genre_year_summary"): [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="titles", min_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="avg_imdb_score", **SCORE),
        ],
        ("marts", "country_summary"): [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToMatchRegex(column="country_code", regex="^[A-Z]{2}$"),
            gxe.ExpectColumnValuesToBeBetween(column="titles", min_value=1),
            gxe.ExpectColumnValuesToBeInSet(column="country_status", value_set=["current", "historic", "unknown"]),
        ],
        ("marts", "person_filmography"): [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="person_name"),
            gxe.ExpectColumnValuesToBeBetween(column="billing_order", min_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="titles_in_role", min_value=1),
        ],
        ("marts", "ml_title_features"): [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToBeUnique(column="content_id"),
            *(
                gxe.ExpectColumnValuesToNotBeNull(column=column)
                for column in ("is_show", "years_before_latest", "seasons", "imdb_score_filled", "log_imdb_votes")
            ),
            gxe.ExpectColumnValuesToBeInSet(column="is_show", value_set=[0, 1]),
            gxe.ExpectColumnValuesToBeBetween(column="log_imdb_votes", min_value=0),
        ],
        ("marts", "ml_interactions"): [
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "content_id"]),
            gxe.ExpectColumnValuesToBeBetween(column="view_count", min_value=0),  # 0: a title only rated
            gxe.ExpectColumnValuesToBeBetween(column="engagement", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="confidence", min_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="mean_rating", min_value=1, max_value=5),
        ],
        ("marts", "user_activity_summary"): [
            gxe.ExpectColumnValuesToBeUnique(column="user_id"),
            gxe.ExpectColumnValuesToBeBetween(column="sessions", min_value=0),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="sessions", column_B="titles_watched", or_equal=True),
            gxe.ExpectColumnValuesToBeBetween(column="hours_watched", min_value=0),
        ],
    }


@dataclass(frozen=True)
class Failure:
    table: str
    expectation: str
    column: str | None
    unexpected_count: int | None
    examples: list[object]

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        count = f"{self.unexpected_count} unexpected" if self.unexpected_count is not None else "failed"
        examples = f", e.g. {self.examples[:3]}" if self.examples else ""
        return f"{where}: {self.expectation} {count}{examples}"


@dataclass(frozen=True)
class QualityReport:
    evaluated: int
    failures: list[Failure]
    docs: Path

    def render(self) -> str:
        passed = self.evaluated - len(self.failures)
        return f"Great Expectations: {passed} of {self.evaluated} expectations met; Data Docs: {self.docs}"


class QualityError(BadInputError, RuntimeError):
    def __init__(self, report: QualityReport) -> None:
        self.report = report
        listed = "\n  ".join(map(str, report.failures))
        super().__init__(f"{len(report.failures)} expectation(s) failed:\n  {listed}\n{report.render()}")


def validate(
    target: Target,
    work_dir: Path,
    selected: dict[tuple[str, str], list[gxe.Expectation]] | None = None,
    schema_suffix: str = "",
) -> QualityReport:
    """Run the suites against ``target``; raise QualityError listing every failure.

    ``schema_suffix`` checks the generation a refresh builds (``raw__next`` for ``raw``, ...).
    """
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GX warns about its own deprecations and pandas
        context = gx.get_context(mode="file", project_root_dir=work_dir)
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        datasource = context.data_sources.add_or_update_postgres(
            name="warehouse", connection_string=target.uri().replace("postgresql://", "postgresql+psycopg2://", 1)
        )
        definitions = []
        for (schema, table), expectations in (selected or suites()).items():
            name = f"{schema}.{table}"
            asset = datasource.add_table_asset(name=name, table_name=table, schema_name=schema + schema_suffix)
            suite = context.suites.add_or_update(gx.ExpectationSuite(name=name, expectations=expectations))
            batch = asset.add_batch_definition_whole_table("whole table")
            definition = gx.ValidationDefinition(name=name, data=batch, suite=suite)
            definitions.append(context.validation_definitions.add_or_update(definition))
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(name="warehouse", validation_definitions=definitions)
        )
        result = checkpoint.run()
        # one build of Data Docs for the whole run: UpdateDataDocsAction rebuilds the site once per table
        context.build_data_docs(
            resource_identifiers=[
                *result.run_results,
                *(ExpectationSuiteIdentifier(name=validation.suite_name) for validation in result.run_results.values()),
            ]
        )
    failures = []
    evaluated = 0
    for validation in result.run_results.values():
        table = validation.suite_name
        for outcome in validation.results:
            evaluated += 1
            if not outcome.success:
                config = outcome.expectation_config
                failures.append(
                    Failure(
                        table=table,
                        expectation=config.type,
                        column=config.kwargs.get("column"),
                        unexpected_count=outcome.result.get("unexpected_count"),
                        examples=list(outcome.result.get("partial_unexpected_list") or []),
                    )
                )
    docs = work_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    report = QualityReport(evaluated=evaluated, failures=failures, docs=docs)
    if failures:
        raise QualityError(report)
    return report
