{#- Returns, in an incremental run, a where clause that keeps the rows of `cte`
    written after the newest row this model already holds (its `loaded_column`,
    by default written_at); in a full build, nothing. The watermark of the models
    that load the app's activity incrementally. -#}
{% macro written_since_last_build(cte, loaded_column='written_at') -%}
    {%- if is_incremental() -%}
        where {{ cte }}.written_at > (
            select coalesce(max(loaded.{{ loaded_column }}), '-infinity') from {{ this }} as loaded
        )
    {%- endif -%}
{%- endmacro %}
