-- a database of the Spark session's catalog, named like the PostgreSQL schema it mirrors
create schema if not exists {{ schema }}
