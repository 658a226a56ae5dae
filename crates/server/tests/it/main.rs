//! Integration tests of the HTTP API: a real server on 127.0.0.1:0, a fresh database (SQLite,
//! or a PostgreSQL schema with `TEST_BACKEND=postgres`), the real sandbox system.

mod certificates;
mod changes;
mod contract;
mod dashboard;
mod dispatch;
mod entity_writes;
mod errors;
mod example_system;
mod field_mappings;
mod fleet;
mod flow;
mod flows;
mod guards;
mod link;
mod mcp;
mod openapi;
mod ops;
mod pagination;
mod runtime;
mod secrets;
mod support;
mod sync_events;
mod tenancy;
mod warehouse;
mod webhooks;
mod writes;
