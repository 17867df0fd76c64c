"""Great Expectations on real servers: the suites pass on the sample, and a failure reads clearly."""

from __future__ import annotations

import re
from contextlib import closing
from pathlib import Path

import pytest

from recommender.refresh import pipeline
from recommender.warehouse import quality
from recommender.warehouse.targets import Target


def test_suites_pass_on_the_sample_and_write_data_docs(sample_warehouse: pipeline.Summary) -> None:
    report = sample_warehouse.quality
    assert report.failures == []
    assert report.evaluated == sum(len(expectations) for expectations in quality.suites().values())
    # the index links this run's page of every suite, and each suite's own page
    site, index = report.docs.parent, report.docs.read_text()
    for schema, table in quality.suites():
        (page,) = set(re.findall(rf"validations/{schema}/{table}/[^'\"]+\.html", index))
        assert (site / page).is_file() and (site / "expectations" / schema / f"{table}.html").is_file()


def test_a_failed_expectation_fails_with_what_failed(database: Target, work_dir: Path) -> None:
    with closing(database.connect()) as conn, conn, conn.cursor() as cur:
        cur.execute("create schema marts")
        cur.execute(
            "create table marts.catalogue as select * from (values"
            " ('tm1', 'movie', 7.5, 1990, 3, 1), ('tm2', 'film', 12.0, 2000, 0, null),"
            " ('tm2', 'show', 5.0, 2010, 1, null)"
            ") as t (content_id, content_type, imdb_score, release_decade, cast_size, best_of_rank)"
        )
    selected = {("marts", "catalogue"): quality.suites()[("marts", "catalogue")]}
    with pytest.raises(quality.QualityError) as err:
        quality.validate(database, work_dir, selected)
    message = str(err.value)
    assert "3 expectation(s) failed" in message
    assert "marts.catalogue.content_id: expect_column_values_to_be_unique 2 unexpected" in message
    assert "marts.catalogue.content_type: expect_column_values_to_be_in_set 1 unexpected, e.g. ['film']" in message
    assert "marts.catalogue.imdb_score: expect_column_values_to_be_between 1 unexpected" in message
    assert err.value.report.docs.is_file()
