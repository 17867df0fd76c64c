with

credits as (
    select * from {{ ref('credits') }}
),

people as (
    select * from {{ ref('people') }}
),

-- a title's directors and top-billed cast, by name for readers (catalogue) and by id
-- for the recommenders (ml_title_features), in billing order
final as (
    select
        credits.content_id,
        string_agg(people.person_name, ', ' order by credits.billing_order)
        filter (where credits.credit_role = 'director') as directors,
        string_agg(people.person_name, ', ' order by credits.billing_order)
        filter (where credits.credit_role = 'actor' and credits.billing_order <= 5) as top_cast,
        count(*) filter (where credits.credit_role = 'actor') as cast_size,
        array_agg(credits.person_id order by credits.billing_order)
        filter (where credits.credit_role = 'director') as director_ids,
        array_agg(credits.person_id order by credits.billing_order)
        filter (where credits.credit_role = 'actor' and credits.billing_order <= 10) as cast_ids
    from credits
    inner join people on credits.person_id = people.person_id
    group by credits.content_id
)

select * from final
