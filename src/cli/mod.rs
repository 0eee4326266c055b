//! Terminal commands that talk to a running server: `edgeprom query ...` and the small blocking
//! HTTP client they (and the whole-binary tests) use.

pub mod http;
pub mod query;
