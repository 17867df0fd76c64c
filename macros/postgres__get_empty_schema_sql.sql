{#- The contract check's typed empty query, as dbt's default builds it, without its
    warning about `numeric` declared without precision and scale: that warning guards
    warehouses whose numeric defaults to scale 0 and rounds, while PostgreSQL's
    unconstrained numeric keeps every value exactly. The contracts declare `numeric`
    where a model computes one (IMDb scores, averages, confidences), so the contract
    states the type readers get, and nothing is rounded. A column without a
    data_type still fails, as in dbt's default. -#}
{% macro postgres__get_empty_schema_sql(columns) %}
    {%- set col_err = [] -%}
    select
    {% for i in columns %}
        {%- set col = columns[i] -%}
        {%- if col['data_type'] is not defined -%}
            {%- do col_err.append(col['name']) -%}
        {%- endif -%}
        {%- set col_name = adapter.quote(col['name']) if col.get('quote') else col['name'] %}
        {{ cast('null', col['data_type']) }} as {{ col_name }}{{ ", " if not loop.last }}
    {%- endfor -%}
    {%- if col_err | length > 0 -%}
        {{ exceptions.column_type_missing(column_names=col_err) }}
    {%- endif -%}
{% endmacro %}
