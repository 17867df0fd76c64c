{#- Recreates a seed table whose columns changed (a copy of the export with or
    without its `index` column), instead of truncating it and loading rows that
    no longer fit; otherwise dbt's default truncate-and-reload.
    Both run in the seed's transaction, so the old rows survive a failed load. -#}
{% macro postgres__reset_csv_table(model, full_refresh, old_relation, agate_table) %}
    {%- set existing = adapter.get_columns_in_relation(old_relation) | map(attribute='name') | list -%}
    {%- set incoming = agate_table.column_names | map('lower') | list -%}
    {{ return(default__reset_csv_table(model, full_refresh or existing != incoming, old_relation, agate_table)) }}
{% endmacro %}
