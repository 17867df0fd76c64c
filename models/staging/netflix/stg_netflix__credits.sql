with

-- dbt seed appends rows in file order to a fresh or truncated table, so the
-- physical order (ctid) is the export's order: title by title, in billing order
source as (
    select
        *,
        row_number() over (order by ctid) as file_position
    from {{ ref('raw_credits') }}
),

renamed as (
    select
        -- ids
        person_id,
        id as content_id,

        -- text
        {{ clean_text('name') }} as person_name,
        {{ clean_text('character') }} as character_name,
        lower(role) as credit_role,

        -- numbers
        file_position as credit_position

    from source
)

select * from renamed
