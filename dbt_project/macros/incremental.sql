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
    Each ALTER runs only when the catalog lacks its rule: ALTER TABLE takes an ACCESS
    EXCLUSIVE lock even when it changes nothing, and that lock cancels a running
    autovacuum of the table. Unguarded, every five-minute run cancelled the vacuum of
    int_behavior_logs_classified (34 million rows at 300,000 users), which restarted
    from the first block after each run, never finished and competed with every build
    for the machine (measured in the benchmark's server log: cancelled 7 times in 12
    minutes, at blocks 88,918 to 542,652).
-#}
{% macro ensure_constraints(relation, checks={}, not_null=[]) %}
do $$
begin
    {%- for column in not_null %}
    if not exists (
        select 1 from pg_attribute
        where attrelid = '{{ relation }}'::regclass and attname = '{{ column }}' and attnotnull
    ) then
        alter table {{ relation }} alter column {{ column }} set not null;
    end if;
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

{#-
    Room in each page for a new version of every row it holds, for a table whose rows are
    all updated at once: with fillfactor 50, PostgreSQL updates a row inside its page (a
    HOT update: no new index entry, the old version pruned when the page is next read)
    instead of moving it and adding an index entry. fct_student_behavior_patterns moves
    days_since_last_active on every row each day: at 300,000 users that update took
    1.26-1.69 s and wrote 300,000 index entries a day; in place, 0.34-0.39 s and none.
    A table fresh from a full build (or from before this hook) has no fillfactor and pages
    filled to the brim: the hook sets it and rewrites the rows once (CLUSTER on the
    table's unique index, 0.33 s at 300,000 users), so the very next day's update already
    fits. After a full build that happens in the transaction that swaps the new table in,
    whose lock readers already wait for; on a table from before, once, in its next build.
    Guarded by the catalog, as ensure_constraints is: every later run only reads pg_class
    and takes no lock.
    Used as a post-hook, before the hook that updates.
-#}
{% macro ensure_fillfactor(relation, fillfactor) %}
do $$
declare
    unique_index text;
begin
    if not exists (
        select 1 from pg_class
        where oid = '{{ relation }}'::regclass and reloptions @> array['fillfactor={{ fillfactor }}']
    ) then
        alter table {{ relation }} set (fillfactor = {{ fillfactor }});
        select index_class.relname into unique_index
        from pg_index
        inner join pg_class as index_class on index_class.oid = pg_index.indexrelid
        where pg_index.indrelid = '{{ relation }}'::regclass and pg_index.indisunique
        order by index_class.relname
        limit 1;
        if unique_index is not null then
            execute format('cluster %s using %I', '{{ relation }}', unique_index);
        end if;
    end if;
end
$$
{% endmacro %}
