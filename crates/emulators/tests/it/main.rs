//! Integration tests: every emulator runs in-process on 127.0.0.1:0 and is driven over HTTP with reqwest.

mod asctrac;
mod bc;
mod clocks;
mod common_infra;
mod netsuite;
mod nextraq;
mod samsara;
mod sap;
mod support;
