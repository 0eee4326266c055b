//! tmp
#![allow(missing_docs)]
use crate::model::Labels;
use std::sync::Arc;
pub mod file;
pub mod template;
pub type QueryFn = Arc<dyn Fn(&str, i64) -> Result<Vec<(Labels, f64)>, String> + Send + Sync>;
pub type ParseFn = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;
