{#- Returns, as an aggregate, the `value` of the row that sorts last by the
    columns `order_by` (a list, compared in order), e.g. a user's latest rating. -#}
{% macro latest_value(value, order_by) %}
    {{- return(adapter.dispatch('latest_value', 'netflix_warehouse')(value, order_by)) -}}
{% endmacro %}

{% macro default__latest_value(value, order_by) -%}
    (array_agg({{ value }} order by {{ order_by | join(' desc, ') }} desc))[1]
{%- endmacro %}

{% macro spark__latest_value(value, order_by) -%}
    max_by({{ value }}, struct({{ order_by | join(', ') }}))
{%- endmacro %}
