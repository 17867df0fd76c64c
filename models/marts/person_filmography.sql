with

credits as (
    select * from {{ ref('credits') }}
),

people as (
    select * from {{ ref('people') }}
),

catalogue as (
    select * from {{ ref('catalogue') }}
),

final as (
    select
        credits.person_id,
        people.person_name,
        credits.credit_role,
        credits.content_id,
        catalogue.title,
        catalogue.content_type,
        catalogue.release_year,
        catalogue.main_genre_id,
        catalogue.imdb_score,
        catalogue.imdb_votes,
        credits.character_names,
        credits.billing_order,
        count(*) over (partition by credits.person_id, credits.credit_role) as titles_in_role,
        row_number() over (
            partition by credits.person_id, credits.credit_role
            order by catalogue.release_year, catalogue.title, credits.content_id
        ) as career_position
    from credits
    inner join people on credits.person_id = people.person_id
    inner join catalogue on credits.content_id = catalogue.content_id
)

select * from final
