"""The README quotes a first `make run`'s summary: its figures must be what a build gives."""

from __future__ import annotations

from recommender.refresh import pipeline, readme_summary
from recommender.warehouse.targets import PROJECT_ROOT

README = readme_summary.README.read_text()


def test_the_quoted_summary_holds_the_figures_of_a_build(sample_warehouse: pipeline.Summary) -> None:
    # the fixture's cohort is smaller than make run's: drift compares the figures the cohort does not change
    assert readme_summary.drift(README, sample_warehouse.render()) == []


def test_drift_names_a_changed_count() -> None:
    output = "\n".join(readme_summary.quote(README)).replace(" data tests ", "0 data tests ", 1)
    (found,) = readme_summary.drift(README, output)
    assert found.startswith("README: 'dbt build: ") and "0 data tests" in found


def test_rewrite_replaces_figures_and_keeps_what_the_quote_elides() -> None:
    output = "\n".join(
        [
            f"netflix_warehouse built from {PROJECT_ROOT}/seeds/netflix in 12.5 s",
            "  core.users        4,000",
            "  core.credits      9,999",
            "  simulation: users batch users-abcdef0123456789: 4,000 rows written",
        ]
    )
    rewritten = readme_summary.quote(readme_summary.rewrite(README, output))
    assert "netflix_warehouse built from /…/seeds/netflix in 12.5 s" in rewritten
    assert "  core.users        4,000" in rewritten
    assert "  simulation: users batch users-abcd…: 4,000 rows written" in rewritten
    assert not any("core.credits" in line for line in rewritten)  # not quoted: stays out
    assert rewritten.count("  …") == readme_summary.quote(README).count("  …")
    assert len(rewritten) == len(readme_summary.quote(README))
