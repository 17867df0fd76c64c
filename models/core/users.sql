with

users as (
    select * from {{ ref('stg_app__users') }}
),

final as (
    select
        user_id,
        age_band,
        country_code,
        signup_date,
        plan,
        device,
        language,
        attributes
    from users
)

select * from final
