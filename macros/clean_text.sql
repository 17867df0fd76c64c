{#- Returns the text trimmed of spaces, tabs and no-break spaces (the export has
    names with both), or null when nothing is left. -#}
{% macro clean_text(column) -%}
    nullif(btrim({{ column }}, e' \t\u00a0'), '')
{%- endmacro %}
