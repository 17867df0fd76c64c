-- How complete is each raw column? Compile with `dbt compile -s raw_titles_profile`
-- and run the SQL in target/compiled, or paste it into pgAdmin.
with

titles as (
    select * from {{ ref('raw_titles') }}
),

profile as (
    select
        count(*) as titles,
        count(*) filter (where title is null) as without_title,
        count(*) filter (where age_certification is null) as without_certification,
        count(*) filter (where imdb_id is null) as without_imdb_id,
        count(*) filter (where imdb_score is null) as without_imdb_score,
        count(*) filter (where genres = '[]') as without_genres,
        count(*) filter (where production_countries = '[]') as without_countries
    from titles
)

select * from profile
