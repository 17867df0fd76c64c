with

credits as (
    select * from {{ ref('stg_netflix__credits') }}
),

-- a person is credited under one name in the export; should copies ever
-- disagree, the most frequent spelling wins
final as (
    select
        person_id,
        mode() within group (order by person_name) as person_name
    from credits
    group by person_id
)

select * from final
