with

credits as (
    select * from {{ ref('stg_netflix__credits') }}
),

-- one row per person, title and role: the export lists some actors several
-- times for one title under different character names; they are kept, in
-- billing order, in character_names
final as (
    select
        content_id,
        person_id,
        credit_role,
        array_remove(
            array_agg(character_name order by credit_position), null
        ) as character_names,
        min(credit_position)::bigint as credit_position,
        row_number() over (
            partition by content_id, credit_role
            order by min(credit_position)
        )::integer as billing_order
    from credits
    group by content_id, person_id, credit_role
)

select * from final
