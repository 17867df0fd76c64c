{#- Returns `expression` (a float or a decimal) rounded half up to `places`
    decimals: PostgreSQL rounds only numerics that way, Spark any number. -#}
{% macro round_half_up(expression, places) %}
    {{- return(adapter.dispatch('round_half_up', 'netflix_warehouse')(expression, places)) -}}
{% endmacro %}

{% macro default__round_half_up(expression, places) -%}
    round(({{ expression }})::numeric, {{ places }})
{%- endmacro %}

{% macro spark__round_half_up(expression, places) -%}
    round({{ expression }}, {{ places }})
{%- endmacro %}
