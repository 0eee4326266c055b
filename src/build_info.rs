//! Build facts recorded by `build.rs`: version, git revision, build date.

/// edgeprom's own version (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git revision the binary was built from, or `unknown`.
pub const REVISION: &str = env!("EDGEPROM_REVISION");

/// Build date as `YYYYMMDD-HH:MM:SS`, as Prometheus prints it.
pub fn date() -> String {
    let secs: i64 = env!("EDGEPROM_BUILD_UNIX").parse().unwrap_or(0);
    let s = crate::logging::rfc3339_ms(secs * 1000);
    // 2026-11-29T16:43:06.000Z -> 20261129-16:43:06
    format!(
        "{}-{}",
        s.get(0..10).unwrap_or("").replace('-', ""),
        s.get(11..19).unwrap_or("")
    )
}

/// Registers `edgeprom_build_info` and `prometheus_build_info` (dashboards key on the latter).
pub fn register() {
    let r = crate::selfmetrics::Registry::global();
    let labels = [
        ("version", VERSION),
        ("revision", REVISION),
        ("branch", "edgeprom"),
        ("goversion", "rust"),
    ];
    r.gauge(
        "edgeprom_build_info",
        "A metric with a constant '1' value labeled by version and revision of edgeprom.",
        &labels,
    )
    .set(1.0);
    r.gauge(
        "prometheus_build_info",
        "A metric with a constant '1' value labeled by the Prometheus version edgeprom is compatible with.",
        &[("version", crate::web::PROMETHEUS_COMPAT_VERSION), ("revision", REVISION), ("branch", "edgeprom"), ("goversion", "rust")],
    )
    .set(1.0);
}
