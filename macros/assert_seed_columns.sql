{#- Fails a seed whose header does not match its declared column_types, naming
    the file and the columns: otherwise agate would load a file that lost a
    column, and the error would surface later in a model that reads it.
    Columns listed in meta.optional_columns may be absent (the export's `index`). -#}
{% macro assert_seed_columns(model, agate_table) %}
    {%- set declared = model['config'].get('column_types', {}).keys() | list -%}
    {%- set optional = model['config'].get('meta', {}).get('optional_columns', []) -%}
    {%- set found = agate_table.column_names | list -%}
    {%- set missing = declared | reject('in', found) | reject('in', optional) | list -%}
    {%- set unexpected = found | reject('in', declared) | list -%}
    {%- if declared and (missing or unexpected) -%}
        {{ exceptions.raise_compiler_error(
            model['original_file_path'] ~ ": header does not match the declared columns of " ~ model['name']
            ~ " (missing: " ~ (missing | join(", ") or "none")
            ~ "; unexpected: " ~ (unexpected | join(", ") or "none") ~ ")"
        ) }}
    {%- endif -%}
{% endmacro %}
