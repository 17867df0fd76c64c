-- a lake table of the session's catalog, before it is registered again: external, so its files stay
drop table if exists {{ table }}
