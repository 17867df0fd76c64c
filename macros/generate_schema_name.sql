{#- Schemas are named exactly raw, staging, core, marts in every target (no
    `<target>_` prefix), so analysts, the API and the recommender find the same
    names everywhere. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{- (custom_schema_name or target.schema) | trim -}}
{%- endmacro %}
