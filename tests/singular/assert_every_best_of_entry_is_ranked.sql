-- Every row of the four staged best-of lists has its row in core.title_rankings.
with

staged as (
    select
        'best_movies' as ranking_list,
        count(*) as entries
    from {{ ref('stg_netflix__best_movies') }}
    union all
    select
        'best_shows' as ranking_list,
        count(*) as entries
    from {{ ref('stg_netflix__best_shows') }}
    union all
    select
        'best_movie_by_year' as ranking_list,
        count(*) as entries
    from {{ ref('stg_netflix__best_movie_by_year') }}
    union all
    select
        'best_show_by_year' as ranking_list,
        count(*) as entries
    from {{ ref('stg_netflix__best_show_by_year') }}
),

ranked as (
    select
        ranking_list,
        count(*) as entries
    from {{ ref('title_rankings') }}
    group by ranking_list
)

select
    staged.ranking_list,
    staged.entries as staged_entries,
    coalesce(ranked.entries, 0) as ranked_entries
from staged
left join ranked on staged.ranking_list = ranked.ranking_list
where staged.entries <> coalesce(ranked.entries, 0)
