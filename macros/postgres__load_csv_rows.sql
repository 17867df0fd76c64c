{#- Loads a whole seed in one statement: each column travels as a single text[]
    bind parameter, and the server unnests and casts it to the column's type.
    dbt's default binds cell by cell through a dispatched macro call, which took
    72 s for the catalogue export; this takes well under a second.
    It runs inside the seed's transaction, so a failure leaves the table as it was. -#}
{% macro postgres__load_csv_rows(model, agate_table) %}
    {%- do assert_seed_columns(model, agate_table) -%}
    {%- set column_types = model['config'].get('column_types', {}) -%}
    {%- set arrays, cells, casts = [], [], [] -%}
    {%- for column in agate_table.columns -%}
        {%- set type = column_types.get(column.name, adapter.convert_type(agate_table, loop.index0)) -%}
        {%- do arrays.append(column.values() | list) -%}
        {%- do cells.append("cell_" ~ loop.index) -%}
        {%- do casts.append("cell_" ~ loop.index ~ "::" ~ type) -%}
    {%- endfor -%}

    {%- set sql -%}
        insert into {{ this.render() }} ({{ get_seed_column_quoted_csv(model, agate_table.column_names) }})
        select {{ casts | join(", ") }}
        from unnest({{ (["%s::text[]"] * cells | length) | join(", ") }}) as cells ({{ cells | join(", ") }})
    {%- endset -%}

    {%- do adapter.add_query(sql, bindings=arrays, abridge_sql_log=True) -%}
    {{ return(sql) }}
{% endmacro %}
