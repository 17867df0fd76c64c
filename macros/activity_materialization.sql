{#- Returns the materialization of the models that load activity incrementally:
    incremental where the adapter can replace a user's rows in place (PostgreSQL's
    delete+insert); on Spark over plain Parquet (no delete, no merge) a full
    rebuild, a table, from the lake, which itself grows incrementally. -#}
{% macro activity_materialization() %}
    {{- return(adapter.dispatch('activity_materialization', 'netflix_warehouse')()) -}}
{% endmacro %}

{% macro default__activity_materialization() %}
    {{- return('incremental') -}}
{% endmacro %}

{% macro spark__activity_materialization() %}
    {{- return('table') -}}
{% endmacro %}
