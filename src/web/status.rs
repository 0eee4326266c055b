//! `/api/v1/status/buildinfo` and `/api/v1/status/runtimeinfo` in Prometheus's JSON shapes.

use super::{api_ok, Resp, WebState};
use crate::logging::rfc3339_ms;

/// The Prometheus version whose API edgeprom answers like; Grafana reads `version` to pick
/// features, so it must be a Prometheus version, not edgeprom's own.
pub const PROMETHEUS_COMPAT_VERSION: &str = "2.42.0";

/// Build facts. No `features` map: Grafana takes its presence to mean Mimir/Cortex.
pub fn buildinfo() -> Resp {
    api_ok(serde_json::json!({
        "version": PROMETHEUS_COMPAT_VERSION,
        "revision": crate::build_info::REVISION,
        "branch": "edgeprom",
        "buildUser": "edgeprom",
        "buildDate": crate::build_info::date(),
        "goVersion": format!("edgeprom {}", crate::build_info::VERSION),
    }))
}

/// Runtime facts, with Prometheus's keys (Go-specific ones filled with honest equivalents).
pub fn runtimeinfo(state: &WebState) -> Resp {
    let (ok, last) = state
        .runtime
        .read()
        .map(|r| (r.reload_success, r.last_config_ms))
        .unwrap_or((false, 0));
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0);
    api_ok(serde_json::json!({
        "startTime": rfc3339_ms(state.start_ms),
        "CWD": cwd,
        "reloadConfigSuccess": ok,
        "lastConfigTime": rfc3339_ms(last),
        "corruptionCount": 0,
        "goroutineCount": threads,
        "GOMAXPROCS": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "GOMEMLIMIT": i64::MAX,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": state.storage_retention,
    }))
}
