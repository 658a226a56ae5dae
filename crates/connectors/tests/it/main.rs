//! Connector tests: the HTTP plumbing against a scripted local server, and each system's
//! connector against its emulator (`ironbridge-emulators`).

mod bc;
mod netsuite;
mod plumbing;
mod reconcile;
mod sap;
