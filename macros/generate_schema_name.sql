{#- Schemas are named exactly raw, staging, core, marts in every target (no
    `<target>_` prefix), so analysts, the API and the recommender find the same
    names everywhere. A refresh builds the next generation beside the live one
    under a suffix (NETFLIX_SCHEMA_SUFFIX, e.g. `__next`) and renames it live
    once audited (recommender/generations.py). -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{- (custom_schema_name or target.schema) | trim -}}{{- env_var('NETFLIX_SCHEMA_SUFFIX', '') -}}
{%- endmacro %}
