-- MetricFlow's calendar: one row per day, from before the oldest release in any export
-- to the end of next year, so that activity written today still has its day.
with

days as (
    select
        generate_series(
            date '1900-01-01',
            (date_trunc('year', current_date) + interval '2 years' - interval '1 day')::date,
            interval '1 day'
        )::date as date_day
),

final as (
    select date_day
    from days
)

select * from final
