//! The web side: HTTP API, router and the embedded browser pages.

pub mod ui;
