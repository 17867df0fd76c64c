-- A session-local function: which of an export column's cells the cast dbt seed applies
-- (cell::kind) refuses, and why (recommender.warehouse.export_types).
create function {{ function }}(cells text[]) returns table (cell integer, message text)
language plpgsql as $$
declare
    converted {{ kind }};
begin
    for i in 1 .. coalesce(array_length(cells, 1), 0) loop
        continue when cells[i] is null;
        begin
            converted := cells[i]::{{ kind }};
        exception when data_exception then
            cell := i - 1;
            message := sqlerrm;
            return next;
        end;
    end loop;
end
$$;
