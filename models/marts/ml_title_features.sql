with

catalogue as (
    select * from {{ ref('catalogue') }}
),

title_people as (
    select * from {{ ref('int_title_people') }}
),

-- centred on the catalogue's own statistics, so a refit needs no outside numbers
catalogue_statistics as (
    select
        max(release_year) as latest_release_year,
        avg(imdb_score) as mean_imdb_score
    from catalogue
),

final as (
    select
        catalogue.content_id,
        (catalogue.content_type = 'show')::integer as is_show,
        catalogue.release_year,
        catalogue_statistics.latest_release_year - catalogue.release_year as years_before_latest,
        catalogue.runtime_minutes,
        coalesce(catalogue.seasons, 0) as seasons,
        (catalogue.imdb_score is not null)::integer as has_imdb_score,
        round(coalesce(catalogue.imdb_score, catalogue_statistics.mean_imdb_score), 2) as imdb_score_filled,
        round(ln(1 + coalesce(catalogue.imdb_votes, 0))::numeric, 4) as log_imdb_votes,
        coalesce(catalogue.age_certification, 'unrated') as age_certification,
        catalogue.genre_ids,
        catalogue.country_codes,
        coalesce(title_people.director_ids, '{}') as director_ids,
        coalesce(title_people.cast_ids, '{}') as cast_ids,
        (cardinality(catalogue.best_of_lists) > 0)::integer as is_best_of
    from catalogue
    cross join catalogue_statistics
    left join title_people on catalogue.content_id = title_people.content_id
)

select * from final
