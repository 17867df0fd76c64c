{{ config(
    materialized=activity_materialization(),
    unique_key='user_id',
    on_schema_change='fail',
) }}

-- Incremental by written_at, like viewing_events: a build merges only the users
-- written since the last one (a user written again replaces its row).
with

users as (
    select * from {{ ref('stg_app__users') }}
),

final as (
    select
        users.user_id,
        users.age_band,
        users.country_code,
        users.signup_date,
        users.plan,
        users.device,
        users.language,
        users.attributes,
        users.written_at
    from users
    {{ written_since_last_build('users') }}
)

select * from final
