//! File-based service discovery (`file_sd_configs`): JSON or YAML lists of target groups, shared
//! by the scraper (scrape targets) and the notifier (Alertmanagers), so both watch files the same
//! way.
//!
//! As Prometheus does: files matching the globs are read at start, whenever they change (we
//! poll modification time and size every few seconds instead of using inotify, which keeps the
//! binary free of a watcher dependency) and at `refresh_interval`. A file that fails to read or
//! parse keeps its last good target groups, and each failure counts in
//! `prometheus_sd_file_read_errors_total`. Every target gets `__meta_filepath`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use crate::model::{Labels, LabelsBuilder};
use crate::selfmetrics::{Counter, Registry, Summary, DEFAULT_OBJECTIVES};

/// Prometheus's file-SD metrics (`discovery/file/file.go`).
struct Metrics {
    read_errors: Arc<Counter>,
    scan_duration: Arc<Summary>,
}

impl Metrics {
    fn get() -> &'static Metrics {
        static M: OnceLock<Metrics> = OnceLock::new();
        M.get_or_init(|| {
            let r = Registry::global();
            Metrics {
                read_errors: r.counter(
                    "prometheus_sd_file_read_errors_total",
                    "The number of File-SD read errors.",
                    &[],
                ),
                scan_duration: r.summary(
                    "prometheus_sd_file_scan_duration_seconds",
                    "The duration of the File-SD scan in seconds.",
                    &[],
                    DEFAULT_OBJECTIVES,
                ),
            }
        })
    }
}

/// How often files are checked for changes.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// A group of targets sharing labels.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Group {
    /// Addresses.
    pub targets: Vec<String>,
    /// Labels of every target (including `__meta_filepath` for files).
    pub labels: Labels,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn valid_label_name(s: &str) -> bool {
    let mut it = s.bytes();
    matches!(it.next(), Some(c) if c == b'_' || c.is_ascii_alphabetic())
        && it.all(|c| c == b'_' || c.is_ascii_alphanumeric())
}

/// Parses one target file (by extension: `.json`, or `.yml`/`.yaml`).
pub(crate) fn parse_file(path: &Path, text: &str) -> Result<Vec<Group>, String> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let raw: Vec<GroupFile> = match ext {
        "json" => serde_json::from_str(text).map_err(|e| e.to_string())?,
        "yml" | "yaml" => {
            if text.trim().is_empty() {
                Vec::new()
            } else {
                serde_yaml::from_str(text).map_err(|e| e.to_string())?
            }
        }
        other => return Err(format!("unknown file extension {other:?}")),
    };
    let filepath = path.to_string_lossy();
    let mut out = Vec::with_capacity(raw.len());
    for g in raw {
        let mut b = LabelsBuilder::new();
        for (k, v) in g.labels {
            if !valid_label_name(&k) {
                return Err(format!("\"{k}\" is not a valid label name"));
            }
            b.set(k, v);
        }
        b.set("__meta_filepath", filepath.as_ref());
        for t in &g.targets {
            if t.is_empty() || t.contains('/') {
                return Err(format!("\"{t}\" is not a valid hostname"));
            }
        }
        out.push(Group {
            targets: g.targets,
            labels: b.into_labels(),
        });
    }
    Ok(out)
}

/// A file's modification time and size, to notice changes.
type Stamp = (Option<SystemTime>, u64);

/// The state of one `file_sd_configs` entry.
pub(crate) struct FileSd {
    globs: Vec<String>,
    refresh: Duration,
    last_refresh: Instant,
    /// Per file: last seen (mtime, len) and last good groups.
    files: HashMap<PathBuf, (Stamp, Vec<Group>)>,
}

impl FileSd {
    pub fn new(globs: Vec<String>, refresh: Duration) -> Self {
        FileSd {
            globs,
            refresh,
            last_refresh: Instant::now(),
            files: HashMap::new(),
        }
    }

    /// Re-scans the globs; re-reads files that changed (or all, at the refresh interval).
    /// Returns the full list of groups when anything changed.
    pub fn poll(&mut self) -> Option<Vec<Group>> {
        let started = Instant::now();
        let r = self.scan();
        Metrics::get()
            .scan_duration
            .observe(started.elapsed().as_secs_f64());
        r
    }

    fn scan(&mut self) -> Option<Vec<Group>> {
        let force = self.last_refresh.elapsed() >= self.refresh;
        if force {
            self.last_refresh = Instant::now();
        }
        let mut present: Vec<PathBuf> = Vec::new();
        for g in &self.globs {
            match glob::glob(g) {
                Ok(paths) => present.extend(paths.flatten()),
                Err(e) => {
                    Metrics::get().read_errors.inc();
                    tracing::error!(glob = %g, err = %e, "invalid file_sd glob");
                }
            }
        }
        present.sort();
        present.dedup();
        let mut changed = false;
        let before = self.files.len();
        self.files.retain(|p, _| present.contains(p));
        if self.files.len() != before {
            changed = true;
        }
        for p in present {
            let stamp = std::fs::metadata(&p)
                .map(|m| (m.modified().ok(), m.len()))
                .unwrap_or((None, 0));
            let known = self.files.get(&p).map(|(s, _)| *s);
            if !force && known == Some(stamp) {
                continue;
            }
            let parsed = std::fs::read_to_string(&p)
                .map_err(|e| e.to_string())
                .and_then(|t| parse_file(&p, &t));
            match parsed {
                Ok(groups) => {
                    let entry = self.files.entry(p).or_insert(((None, 0), Vec::new()));
                    if entry.1 != groups {
                        changed = true;
                    }
                    *entry = (stamp, groups);
                }
                Err(e) => {
                    Metrics::get().read_errors.inc();
                    tracing::error!(file = %p.display(), err = %e, "error reading file_sd file; keeping its last good targets");
                    // Remember the stamp so a broken file is not re-read every poll.
                    let entry = self.files.entry(p).or_insert(((None, 0), Vec::new()));
                    entry.0 = stamp;
                }
            }
        }
        if !changed {
            return None;
        }
        let mut paths: Vec<&PathBuf> = self.files.keys().collect();
        paths.sort();
        Some(
            paths
                .into_iter()
                .flat_map(|p| self.files[p].1.iter().cloned())
                .collect(),
        )
    }

    /// The configured refresh interval.
    pub fn refresh_interval(&self) -> Duration {
        self.refresh
    }

    /// Polls in a task (every few seconds, at most every refresh interval) and hands each
    /// changed list of groups to `on_change`; the task ends when `on_change` returns false
    /// (its owner is gone) or when the returned handle is aborted.
    pub fn watch(
        mut self,
        mut on_change: impl FnMut(Vec<Group>) -> bool + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(POLL_INTERVAL.min(self.refresh_interval())).await;
                // Reading files blocks; keep it off the async workers.
                let (sd, changed) = match tokio::task::spawn_blocking(move || {
                    let c = self.poll();
                    (self, c)
                })
                .await
                {
                    Ok(r) => r,
                    Err(_) => return,
                };
                self = sd;
                if let Some(groups) = changed {
                    if !on_change(groups) {
                        return;
                    }
                }
            }
        })
    }

    /// All current groups.
    #[cfg(test)]
    pub fn groups(&self) -> Vec<Group> {
        let mut paths: Vec<&PathBuf> = self.files.keys().collect();
        paths.sort();
        paths
            .into_iter()
            .flat_map(|p| self.files[p].1.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_json_and_yaml() {
        let cases = [
            (
                "t.json",
                r#"[{"targets": ["a:1", "b:2"], "labels": {"env": "x"}}]"#,
                Ok(2),
            ),
            (
                "t.yml",
                "- targets: ['a:1']\n  labels:\n    env: y\n",
                Ok(1),
            ),
            ("t.yaml", "", Ok(0)),
            (
                "t.json",
                "[{\"targets\": [\"a:1\"], \"bogus\": 1}]",
                Err("unknown field"),
            ),
            (
                "t.json",
                "[{\"targets\": [\"a:1\"], \"labels\": {\"0x\": \"y\"}}]",
                Err("not a valid label name"),
            ),
            ("t.yml", "- targets: ['a/b']\n", Err("not a valid hostname")),
            ("t.txt", "", Err("unknown file extension")),
        ];
        for (name, text, want) in cases {
            let got = parse_file(Path::new(name), text);
            match (got, want) {
                (Ok(g), Ok(n)) => {
                    assert_eq!(
                        g.iter().map(|g| g.targets.len()).sum::<usize>(),
                        n,
                        "{name}"
                    );
                    for grp in g {
                        assert_eq!(grp.labels.get("__meta_filepath"), Some(name));
                    }
                }
                (Err(e), Err(w)) => assert!(e.contains(w), "{name}: {e}"),
                (g, w) => panic!("{name}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn broken_file_keeps_last_good_targets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("t.json");
        std::fs::write(&f, r#"[{"targets": ["a:1"]}]"#).expect("write");
        let glob = dir.path().join("*.json").to_string_lossy().into_owned();
        let mut sd = FileSd::new(vec![glob], Duration::from_secs(300));
        let g = sd.poll().expect("first read");
        assert_eq!(g[0].targets, vec!["a:1"]);
        let errors_before = Metrics::get().read_errors.get();
        std::fs::write(&f, "[{broken").expect("write");
        assert!(sd.poll().is_none(), "a broken file changes nothing");
        assert!(Metrics::get().read_errors.get() > errors_before);
        assert_eq!(sd.groups()[0].targets, vec!["a:1"]);
        std::fs::write(&f, r#"[{"targets": ["b:2", "c:3"]}]"#).expect("write");
        let g = sd.poll().expect("changed");
        assert_eq!(g[0].targets, vec!["b:2", "c:3"]);
        std::fs::remove_file(&f).expect("rm");
        assert_eq!(sd.poll().expect("removed"), vec![]);
    }
}
