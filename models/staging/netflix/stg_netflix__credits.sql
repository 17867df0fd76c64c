with

source as (
    select * from {{ ref('raw_credits') }}
),

renamed as (
    select
        -- ids
        person_id,
        id as content_id,

        -- text
        {{ clean_text('name') }} as person_name,
        {{ clean_text('character') }} as character_name,
        lower(role) as credit_role

    from source
)

select * from renamed
