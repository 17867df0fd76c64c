with

source as (
    select * from {{ source('app', 'users') }}
),

renamed as (
    select
        -- ids
        user_id,
        country_code,

        -- text
        age_band,
        plan,
        device,
        language,
        attributes,

        -- dates
        signup_date,
        written_at

    from source
)

select * from renamed
