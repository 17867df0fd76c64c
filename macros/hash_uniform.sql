{#- Returns a number in [0, 1) drawn from the text `key` by a hash (hashtextextended):
    the same key always gives the same number, so a draw needs no stored random state. -#}
{% macro hash_uniform(key) -%}
    ((hashtextextended({{ key }}, 0) & 9223372036854775807)::double precision / 9223372036854775808.0)
{%- endmacro %}
