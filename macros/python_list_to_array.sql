{#- Returns a Python-literal list of strings ("['crime', 'drama']", "[]") as a
    text[] in the same order; null stays null. Items are quoted with ' or with "
    (Python's repr switches quotes when an item holds an apostrophe). Items that
    repr escapes (backslashes, both quote kinds, unprintable characters) are not
    unescaped: the export has none, and tests/test_sql_macros.py pins the rest. -#}
{% macro python_list_to_array(column) -%}
    case
        when {{ column }} is not null then array(
            select coalesce(list_item.quoted[1], list_item.quoted[2])
            from regexp_matches({{ column }}, '''([^'']*)''|"([^"]*)"', 'g')
                with ordinality as list_item (quoted, position)
            order by list_item.position
        )
    end
{%- endmacro %}
