{#-
    Incremental strategy 'tail_replace' (config: unique_key, tail_column): for every key in
    the increment, the rows from the smallest tail_column value the increment has for that
    key onwards are deleted, then the increment is inserted. int_sessions uses it: an
    incremental run recomputes only each changed user's sessions from the first one a new
    event can touch (numbered on from the last untouched one), and the sessions before it
    stay as they are, unwritten. Rows past the increment's end are deleted too, so sessions
    merged by a late event leave no stale row behind.
-#}
{% macro get_incremental_tail_replace_sql(arg_dict) %}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source = arg_dict["temp_relation"] -%}
    {%- set key = config.require("unique_key") -%}
    {%- set tail = config.require("tail_column") -%}
    {%- set columns = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}
    analyze {{ source }};

    delete from {{ target }} as existing
    using (
        select {{ key }}, min({{ tail }}) as first_replaced
        from {{ source }}
        group by {{ key }}
    ) as replaced
    where existing.{{ key }} = replaced.{{ key }}
        and existing.{{ tail }} >= replaced.first_replaced;

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
{% endmacro %}

{#-
    Constraints on an incremental table, added once after it is (re)built and enforced by
    PostgreSQL on every later write: a rule checked on write costs nothing per build,
    where a dbt data test scans the whole table every build. Used as a post-hook.
    checks: {constraint name suffix: SQL boolean expression}; not_null: column names.
-#}
{% macro ensure_constraints(relation, checks={}, not_null=[]) %}
do $$
begin
    {%- for column in not_null %}
    alter table {{ relation }} alter column {{ column }} set not null;
    {%- endfor %}
    {%- for suffix, expression in checks.items() %}
    if not exists (
        select 1 from pg_constraint
        where conrelid = '{{ relation }}'::regclass and conname = '{{ relation.identifier }}_{{ suffix }}'
    ) then
        alter table {{ relation }}
            add constraint {{ relation.identifier }}_{{ suffix }} check ({{ expression }});
    end if;
    {%- endfor %}
end
$$
{% endmacro %}
