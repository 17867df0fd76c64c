{#- Returns the seconds from `start` to `finish` (two timestamps) as an exact
    decimal, so that rounding a fraction of a day agrees across adapters. -#}
{% macro seconds_between(start, finish) %}
    {{- return(adapter.dispatch('seconds_between', 'netflix_warehouse')(start, finish)) -}}
{% endmacro %}

{% macro default__seconds_between(start, finish) -%}
    extract(epoch from {{ finish }} - {{ start }})
{%- endmacro %}

{% macro spark__seconds_between(start, finish) -%}
    (unix_micros({{ finish }}) - unix_micros({{ start }})) / 1000000.0
{%- endmacro %}
