//! Targets: turning discovered label sets into scrape targets (Prometheus's `PopulateLabels`),
//! and the per-target status the targets API shows.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::config::{format_duration, parse_duration, ScrapeConfig};
use crate::model::relabel;
use crate::model::{Labels, LabelsBuilder};

/// `__address__`
pub(crate) const ADDRESS: &str = "__address__";
/// `__scheme__`
pub(crate) const SCHEME: &str = "__scheme__";
/// `__metrics_path__`
pub(crate) const METRICS_PATH: &str = "__metrics_path__";
/// `__scrape_interval__`
pub(crate) const SCRAPE_INTERVAL: &str = "__scrape_interval__";
/// `__scrape_timeout__`
pub(crate) const SCRAPE_TIMEOUT: &str = "__scrape_timeout__";
/// Prefix of URL parameter labels.
pub(crate) const PARAM_PREFIX: &str = "__param_";
/// Prefix of discovery meta labels (removed after relabeling).
pub(crate) const META_PREFIX: &str = "__meta_";

/// The result of populating one discovered target.
pub(crate) enum Populated {
    /// A target to scrape: final labels (still with `__` labels), interval, timeout.
    Active {
        labels: Labels,
        interval: Duration,
        timeout: Duration,
    },
    /// relabel_configs dropped it.
    Dropped,
    /// The target is unusable (error as Prometheus words it).
    Invalid(String),
}

/// Applies job defaults and relabel_configs to a discovered label set, as Prometheus 2.42's
/// `PopulateLabels`: meta labels seed relabeling, then meta labels go, the port is defaulted
/// from the scheme and `instance` defaults to the address.
pub(crate) fn populate(discovered: &Labels, cfg: &ScrapeConfig) -> Populated {
    let mut b = discovered.builder();
    let defaults: [(&str, String); 5] = [
        ("job", cfg.job_name.clone()),
        (SCHEME, cfg.scheme.clone()),
        (METRICS_PATH, cfg.metrics_path.clone()),
        (SCRAPE_INTERVAL, format_duration(cfg.scrape_interval)),
        (SCRAPE_TIMEOUT, format_duration(cfg.scrape_timeout)),
    ];
    for (n, v) in defaults {
        if b.get(n).is_none() {
            b.set(n, v);
        }
    }
    for (k, vs) in &cfg.params {
        let name = format!("{PARAM_PREFIX}{k}");
        if let Some(v) = vs.first() {
            if b.get(&name).is_none() {
                b.set(name, v.clone());
            }
        }
    }
    let preset = b.into_labels();
    let Some(lset) = relabel::process(&preset, &cfg.relabel_configs) else {
        return Populated::Dropped;
    };
    let Some(addr) = lset.get(ADDRESS) else {
        return Populated::Invalid("no address".into());
    };
    let scheme = lset.get(SCHEME).unwrap_or("http");
    let addr = match add_port(addr, scheme) {
        Ok(a) => a,
        Err(e) => return Populated::Invalid(e),
    };
    let interval = match lset.get(SCRAPE_INTERVAL).map(parse_duration) {
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Ok(_)) => return Populated::Invalid("scrape interval cannot be 0".into()),
        Some(Err(e)) => return Populated::Invalid(format!("error parsing scrape interval: {e}")),
        None => cfg.scrape_interval,
    };
    let timeout = match lset.get(SCRAPE_TIMEOUT).map(parse_duration) {
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Ok(_)) => return Populated::Invalid("scrape timeout cannot be 0".into()),
        Some(Err(e)) => return Populated::Invalid(format!("error parsing scrape timeout: {e}")),
        None => cfg.scrape_timeout,
    };
    if timeout > interval {
        return Populated::Invalid(format!(
            "scrape timeout cannot be greater than scrape interval ({:?} > {:?})",
            format_duration(timeout),
            format_duration(interval)
        ));
    }
    let mut out = LabelsBuilder::new();
    for l in &lset {
        if !l.name.starts_with(META_PREFIX) {
            out.set(l.name.clone(), l.value.clone());
        }
    }
    out.set(ADDRESS, addr.clone());
    if out.get("instance").is_none() {
        out.set("instance", addr);
    }
    Populated::Active {
        labels: out.into_labels(),
        interval,
        timeout,
    }
}

/// Adds the scheme's default port when the address has none (Prometheus 2.x behaviour).
fn add_port(addr: &str, scheme: &str) -> Result<String, String> {
    if addr.contains('/') {
        return Err(format!("{addr:?} is not a valid hostname"));
    }
    let has_port = if let Some(rest) = addr.strip_prefix('[') {
        rest.contains("]:")
    } else {
        addr.matches(':').count() == 1
    };
    if has_port {
        return Ok(addr.to_string());
    }
    let port = if scheme == "https" { 443 } else { 80 };
    if addr.contains(':') && !addr.starts_with('[') {
        return Ok(format!("[{addr}]:{port}"));
    }
    Ok(format!("{addr}:{port}"))
}

/// Labels attached to scraped samples: the final labels without `__`-prefixed ones.
pub(crate) fn public_labels(lset: &Labels) -> Labels {
    let v: Vec<_> = lset
        .iter()
        .filter(|l| !l.name.starts_with("__"))
        .cloned()
        .collect();
    Labels::from_sorted_unchecked(v)
}

/// The scrape URL: scheme, address, path, and parameters (config params with `__param_*`
/// overriding the first value).
pub(crate) fn scrape_url(lset: &Labels, cfg: &ScrapeConfig) -> String {
    let scheme = lset.get(SCHEME).unwrap_or("http");
    let addr = lset.get(ADDRESS).unwrap_or("");
    let path = lset.get(METRICS_PATH).unwrap_or("/metrics");
    let mut params: BTreeMap<String, Vec<String>> = cfg.params.clone();
    for l in lset {
        if let Some(k) = l.name.strip_prefix(PARAM_PREFIX) {
            let e = params.entry(k.to_string()).or_default();
            if e.is_empty() {
                e.push(l.value.clone());
            } else {
                e[0] = l.value.clone();
            }
        }
    }
    let mut url = format!("{scheme}://{addr}{path}");
    if !params.is_empty() {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, vs) in &params {
            for v in vs {
                ser.append_pair(k, v);
            }
        }
        url.push('?');
        url.push_str(&ser.finish());
    }
    url
}

/// Health of a target, as the API spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Health {
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// Last scrape outcome.
#[derive(Clone, Debug)]
pub(crate) struct Status {
    pub health: Health,
    pub last_error: String,
    pub last_scrape: Option<SystemTime>,
    pub last_duration: Duration,
}

/// Metadata of one metric family, as scraped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub kind: &'static str,
    pub help: String,
    pub unit: String,
}

/// One active target, shared by its loop (writer) and the API (reader).
pub(crate) struct Target {
    pub discovered: Labels,
    /// Final labels including `__address__`, `__scheme__`...
    pub labels: Labels,
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub status: Mutex<Status>,
    /// Metric family name -> metadata; written by the loop after each successful scrape.
    pub metadata: Mutex<BTreeMap<String, Meta>>,
}

impl Target {
    pub fn new(
        discovered: Labels,
        labels: Labels,
        url: String,
        interval: Duration,
        timeout: Duration,
    ) -> Self {
        Target {
            discovered,
            labels,
            url,
            interval,
            timeout,
            status: Mutex::new(Status {
                health: Health::Unknown,
                last_error: String::new(),
                last_scrape: None,
                last_duration: Duration::ZERO,
            }),
            metadata: Mutex::new(BTreeMap::new()),
        }
    }

    /// Identity of the target inside its pool: unchanged identity keeps the loop running.
    pub fn key(&self) -> String {
        format!("{}|{}", self.url, self.labels)
    }

    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports() {
        let cases = [
            ("h", "http", Ok("h:80")),
            ("h", "https", Ok("h:443")),
            ("h:9", "https", Ok("h:9")),
            ("[::1]:9", "http", Ok("[::1]:9")),
            ("::1", "http", Ok("[::1]:80")),
            ("h/x", "http", Err(())),
        ];
        for (a, s, want) in cases {
            assert_eq!(
                add_port(a, s).map_err(|_| ()),
                want.map(String::from),
                "{a}"
            );
        }
    }
}
