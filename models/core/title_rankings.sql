with

best_movies as (
    select * from {{ ref('stg_netflix__best_movies') }}
),

best_shows as (
    select * from {{ ref('stg_netflix__best_shows') }}
),

best_movie_by_year as (
    select * from {{ ref('stg_netflix__best_movie_by_year') }}
),

best_show_by_year as (
    select * from {{ ref('stg_netflix__best_show_by_year') }}
),

titles as (
    select * from {{ ref('stg_netflix__titles') }}
),

country_spellings as (
    select * from {{ ref('country_spellings') }}
),

best_of_genres as (
    select * from {{ ref('best_of_genres') }}
),

listed as (
    select
        'best_movies' as ranking_list,
        'movie' as content_type,
        title,
        release_year,
        imdb_score,
        imdb_votes,
        main_genre,
        main_production_country
    from best_movies
    union all
    select
        'best_shows' as ranking_list,
        'show' as content_type,
        title,
        release_year,
        imdb_score,
        imdb_votes,
        main_genre,
        main_production_country
    from best_shows
    union all
    select
        'best_movie_by_year' as ranking_list,
        'movie' as content_type,
        title,
        release_year,
        imdb_score,
        null::bigint as imdb_votes,
        main_genre,
        main_production_country
    from best_movie_by_year
    union all
    select
        'best_show_by_year' as ranking_list,
        'show' as content_type,
        title,
        release_year,
        imdb_score,
        null::bigint as imdb_votes,
        main_genre,
        main_production_country
    from best_show_by_year
),

-- the lists name a title by its name, year and kind; a row that matches no
-- title (or several) keeps a null content_id and is counted by a warning test
matches as (
    select
        listed.ranking_list,
        listed.title,
        listed.release_year,
        min(titles.content_id) as content_id,
        count(titles.content_id) as candidates
    from listed
    left join titles
        on
            lower(listed.title) = lower(titles.title)
            and listed.release_year = titles.release_year
            and listed.content_type = titles.content_type
    group by listed.ranking_list, listed.title, listed.release_year
),

-- the lists' genre vocabulary differs from the catalogue's in three words;
-- the best_of_genres seed maps each of its words to the catalogue's
final as (
    select
        listed.ranking_list,
        listed.title as listed_title,
        listed.release_year as listed_release_year,
        listed.content_type,
        case when matches.candidates = 1 then matches.content_id end as content_id,
        row_number() over (
            partition by listed.ranking_list
            order by listed.imdb_score desc, listed.imdb_votes desc nulls last, listed.title asc
        )::integer as list_rank,
        listed.imdb_score,
        listed.imdb_votes,
        best_of_genres.genre_id as main_genre_id,
        country_spellings.country_code as main_country_code
    from listed
    inner join matches
        on
            listed.ranking_list = matches.ranking_list
            and listed.title = matches.title
            and listed.release_year = matches.release_year
    left join best_of_genres on listed.main_genre = best_of_genres.list_genre
    left join country_spellings on lower(listed.main_production_country) = country_spellings.spelling
)

select * from final
