//! The test kit's `TestApp` (the real server on a random port with a fresh database) and
//! its helpers.

pub use ironbridge_testkit::app::*;
