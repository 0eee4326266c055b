//! The scrape manager: one pool per job, one loop per target, reconciled on every config reload
//! and every discovery update.
//!
//! Reload semantics (Prometheus's `scrapePool.reload` / `sync`):
//! - a job whose config is unchanged keeps its loops running, without a gap;
//! - a job whose config changed restarts every loop with the new settings; each new loop takes
//!   over its predecessor's scrape cache, so staleness tracking carries on and no stale markers
//!   are written for series that are still there;
//! - a target that disappears (from the config or from discovery) stops, and writes stale
//!   markers for its series once it is clear it is gone (see `scrape_loop`);
//! - a removed job stops all its targets the same way.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::cache::ScrapeCache;
use super::metrics::Metrics;
use super::scrape_loop::{self, Control, LoopCtx};
use super::target::{populate, scrape_url, Populated, Target, ADDRESS};
use crate::config::ScrapeConfig;
use crate::discovery::{FileSd, Group};
use crate::http_client::HttpClient;
use crate::model::Labels;
use crate::storage::Appendable;

/// Why a config could not be applied (the other jobs are applied regardless).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The job's HTTP client could not be built (unreadable CA file, bad key...).
    #[error("scrape job {job:?}: {source}")]
    Client {
        /// The job.
        job: String,
        /// Why.
        #[source]
        source: crate::http_client::Error,
    },
    /// No tokio runtime to spawn the loops on.
    #[error("apply_config must be called inside a tokio runtime")]
    NoRuntime,
}

struct LoopHandle {
    target: Arc<Target>,
    control: watch::Sender<Control>,
    join: Option<JoinHandle<ScrapeCache>>,
}

pub(crate) struct PoolState {
    pub cfg: Arc<ScrapeConfig>,
    fingerprint: String,
    client: Arc<HttpClient>,
    /// Target groups by source (`static/N`, `file_sd/N`).
    groups: BTreeMap<String, Vec<Group>>,
    loops: HashMap<String, LoopHandle>,
    /// Discovered labels of targets relabeling dropped.
    pub dropped: Vec<Labels>,
    sd_tasks: Vec<JoinHandle<()>>,
    forced_error: Arc<Mutex<Option<String>>>,
    stopped: bool,
}

impl PoolState {
    /// Active targets, ordered by scrape URL.
    pub fn targets(&self) -> Vec<Arc<Target>> {
        let mut v: Vec<Arc<Target>> = self.loops.values().map(|l| l.target.clone()).collect();
        v.sort_by(|a, b| a.url.cmp(&b.url).then_with(|| a.labels.cmp(&b.labels)));
        v
    }
}

/// Loops told to stop that may still be writing end-of-run stale markers; their control
/// senders must outlive them (a dropped sender reads as "shutting down").
type Retiring = Arc<Mutex<Vec<LoopHandle>>>;

pub(crate) struct Pool {
    job: String,
    appendable: Arc<dyn Appendable>,
    retiring: Retiring,
    pub state: Mutex<PoolState>,
}

/// One metric family's metadata as a target exposed it (`# TYPE`, `# HELP`, `# UNIT`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MetricMeta {
    /// Metric family name.
    pub family: String,
    /// `counter`, `gauge`, `histogram`, `gaugehistogram`, `summary`, `info`, `stateset` or
    /// `unknown`.
    pub kind: &'static str,
    /// HELP text.
    pub help: String,
    /// UNIT (OpenMetrics), often empty.
    pub unit: String,
}

/// See the module doc. Shared as `Arc<ScrapeManager>` between the app (reloads, shutdown) and
/// the web layer (targets and metadata APIs).
pub struct ScrapeManager {
    appendable: Arc<dyn Appendable>,
    retiring: Retiring,
    pub(crate) pools: Mutex<BTreeMap<String, Arc<Pool>>>,
}

/// Fingerprint of a job's config: its serialized form plus the secrets serialization hides.
fn fingerprint(cfg: &ScrapeConfig) -> String {
    let mut s = serde_json::to_string(cfg).unwrap_or_default();
    if let Some(b) = &cfg.http.basic_auth {
        if let Some(p) = &b.password {
            s.push_str(&p.0);
        }
    }
    if let Some(a) = &cfg.http.authorization {
        if let Some(c) = &a.credentials {
            s.push_str(&c.0);
        }
    }
    s
}

impl ScrapeManager {
    /// A manager appending to `appendable`; no pools until [`ScrapeManager::apply_config`].
    pub fn new(appendable: Arc<dyn Appendable>) -> Arc<Self> {
        Arc::new(ScrapeManager {
            appendable,
            retiring: Arc::new(Mutex::new(Vec::new())),
            pools: Mutex::new(BTreeMap::new()),
        })
    }

    /// Reconciles pools and loops with `scrape_configs` (see the module doc). Must run inside a
    /// tokio runtime. A job whose HTTP client cannot be built is skipped (its previous pool,
    /// if any, keeps running) and reported in the error; the other jobs are applied.
    pub fn apply_config(&self, scrape_configs: &[ScrapeConfig]) -> Result<(), Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoRuntime);
        }
        let m = Metrics::get();
        let mut first_err = None;
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        let wanted: std::collections::HashSet<&str> =
            scrape_configs.iter().map(|c| c.job_name.as_str()).collect();
        let removed: Vec<String> = pools
            .keys()
            .filter(|k| !wanted.contains(k.as_str()))
            .cloned()
            .collect();
        for job in removed {
            if let Some(p) = pools.remove(&job) {
                p.stop(true);
                crate::selfmetrics::Registry::global().remove(
                    "prometheus_target_scrape_pool_targets",
                    &[("scrape_job", &job)],
                );
            }
        }
        for cfg in scrape_configs {
            let fp = fingerprint(cfg);
            if let Some(p) = pools.get(&cfg.job_name) {
                let same = p
                    .state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .fingerprint
                    == fp;
                if same {
                    continue;
                }
                m.pool_reloads.inc();
                match HttpClient::new(&cfg.http) {
                    Ok(client) => p.reload(Arc::new(cfg.clone()), fp, Arc::new(client)),
                    Err(source) => {
                        m.pool_reloads_failed.inc();
                        first_err.get_or_insert(Error::Client {
                            job: cfg.job_name.clone(),
                            source,
                        });
                    }
                }
                continue;
            }
            m.pools_total.inc();
            let client = match HttpClient::new(&cfg.http) {
                Ok(c) => Arc::new(c),
                Err(source) => {
                    m.pools_failed.inc();
                    first_err.get_or_insert(Error::Client {
                        job: cfg.job_name.clone(),
                        source,
                    });
                    continue;
                }
            };
            let pool = Arc::new(Pool {
                job: cfg.job_name.clone(),
                appendable: self.appendable.clone(),
                retiring: self.retiring.clone(),
                state: Mutex::new(PoolState {
                    cfg: Arc::new(cfg.clone()),
                    fingerprint: fp,
                    client,
                    groups: BTreeMap::new(),
                    loops: HashMap::new(),
                    dropped: Vec::new(),
                    sd_tasks: Vec::new(),
                    forced_error: Arc::new(Mutex::new(None)),
                    stopped: false,
                }),
            });
            pool.start_discovery(false);
            pools.insert(cfg.job_name.clone(), pool);
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stops every loop without stale markers (the server is shutting down and will resume
    /// where it was) and waits for them to end.
    pub async fn stop(&self) {
        let pools: Vec<Arc<Pool>> = {
            let mut p = self.pools.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *p).into_values().collect()
        };
        let mut joins = Vec::new();
        for p in pools {
            joins.extend(p.stop(false));
        }
        let retiring: Vec<LoopHandle> =
            std::mem::take(&mut *self.retiring.lock().unwrap_or_else(|e| e.into_inner()));
        for mut h in retiring {
            let _ = h.control.send(Control::Stop { stale: false });
            joins.extend(h.join.take());
        }
        for j in joins {
            let _ = j.await;
        }
    }

    /// JSON responses for `/api/v1/targets`, `/api/v1/targets/metadata` and `/api/v1/metadata`
    /// (Prometheus's shapes); `None` for other paths.
    pub fn handle_api(&self, path: &str, params: &[(String, String)]) -> Option<(u16, Vec<u8>)> {
        super::api::handle(self, path, params)
    }

    /// Snapshot of the pools, ordered by job name.
    /// The metadata every active target last exposed: one entry per distinct (family, type,
    /// help, unit), sorted by family. Remote write sends it (`metadata_config`).
    pub fn metadata(&self) -> Vec<MetricMeta> {
        let mut all = std::collections::BTreeSet::new();
        for p in self.pools() {
            let targets = p.state.lock().unwrap_or_else(|e| e.into_inner()).targets();
            for t in targets {
                let md = t.metadata.lock().unwrap_or_else(|e| e.into_inner());
                for (n, x) in md.iter() {
                    all.insert(MetricMeta {
                        family: n.clone(),
                        kind: x.kind,
                        help: x.help.clone(),
                        unit: x.unit.clone(),
                    });
                }
            }
        }
        all.into_iter().collect()
    }

    pub(crate) fn pools(&self) -> Vec<Arc<Pool>> {
        self.pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

impl Pool {
    /// The job name.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// Sets static groups, reads file_sd files once and starts their watchers, then syncs.
    fn start_discovery(self: &Arc<Self>, restart_loops: bool) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for t in st.sd_tasks.drain(..) {
            t.abort();
        }
        st.groups.clear();
        let cfg = st.cfg.clone();
        for (i, sc) in cfg.static_configs.iter().enumerate() {
            st.groups.insert(
                format!("static/{i}"),
                vec![Group {
                    targets: sc.targets.clone(),
                    labels: sc.labels.clone(),
                }],
            );
        }
        for (i, fc) in cfg.file_sd_configs.iter().enumerate() {
            let mut sd = FileSd::new(fc.files.clone(), fc.refresh_interval);
            let groups = sd.poll().unwrap_or_default();
            let key = format!("file_sd/{i}");
            st.groups.insert(key.clone(), groups);
            let weak: Weak<Pool> = Arc::downgrade(self);
            st.sd_tasks.push(sd.watch(move |groups| {
                let Some(pool) = weak.upgrade() else {
                    return false;
                };
                pool.set_groups(&key, groups);
                true
            }));
        }
        self.sync(&mut st, restart_loops);
    }

    fn set_groups(&self, key: &str, groups: Vec<Group>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.stopped {
            return;
        }
        st.groups.insert(key.to_string(), groups);
        self.sync(&mut st, false);
    }

    fn reload(self: &Arc<Self>, cfg: Arc<ScrapeConfig>, fp: String, client: Arc<HttpClient>) {
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.cfg = cfg;
            st.fingerprint = fp;
            st.client = client;
        }
        self.start_discovery(true);
    }

    /// Reconciles loops with the current groups. With `restart`, loops of targets that stay are
    /// replaced (new config), handing over their caches.
    fn sync(&self, st: &mut PoolState, restart: bool) {
        let cfg = st.cfg.clone();
        let mut next: Vec<Target> = Vec::new();
        let mut dropped = Vec::new();
        for groups in st.groups.values() {
            for g in groups {
                for addr in &g.targets {
                    let mut b = g.labels.builder();
                    b.set(ADDRESS, addr.clone());
                    let discovered = b.into_labels();
                    let (populated, discovered) = populate(&discovered, &cfg);
                    match populated {
                        Populated::Active {
                            labels,
                            interval,
                            timeout,
                        } => {
                            let url = scrape_url(&labels, &cfg);
                            next.push(Target::new(discovered, labels, url, interval, timeout));
                        }
                        Populated::Dropped => dropped.push(discovered),
                        Populated::Invalid(e) => {
                            tracing::warn!(job = %cfg.job_name, target = %addr, err = %e, "creating target failed");
                        }
                    }
                }
            }
        }
        st.dropped = dropped;
        let mut wanted: HashMap<String, Target> = HashMap::new();
        for t in next {
            wanted.entry(t.key()).or_insert(t);
        }
        let forced = if cfg.target_limit > 0 && wanted.len() > cfg.target_limit {
            Metrics::get().exceeded_target_limit.inc();
            Some(format!(
                "target_limit exceeded (number of targets: {}, limit: {})",
                wanted.len(),
                cfg.target_limit
            ))
        } else {
            None
        };
        *st.forced_error.lock().unwrap_or_else(|e| e.into_inner()) = forced;

        // Stop targets that are gone.
        let gone: Vec<String> = st
            .loops
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(h) = st.loops.remove(&k) {
                self.retire(h, true);
            }
        }
        for (k, t) in wanted {
            let prev = match st.loops.get_mut(&k) {
                Some(_) if !restart => continue,
                Some(h) => {
                    let _ = h.control.send(Control::Stop { stale: false });
                    h.join.take()
                }
                None => None,
            };
            let target = Arc::new(t);
            let (tx, rx) = watch::channel(Control::Run);
            let ctx = LoopCtx {
                target: target.clone(),
                cfg: cfg.clone(),
                client: st.client.clone(),
                appendable: self.appendable.clone(),
                forced_error: st.forced_error.clone(),
            };
            let join = scrape_loop::spawn(ctx, rx, prev);
            st.loops.insert(
                k,
                LoopHandle {
                    target,
                    control: tx,
                    join: Some(join),
                },
            );
        }
        Metrics::pool_targets(&self.job).set(st.loops.len() as f64);
    }

    /// Tells a loop to stop and keeps its handle until it has finished.
    fn retire(&self, h: LoopHandle, stale: bool) {
        let _ = h.control.send(Control::Stop { stale });
        let mut r = self.retiring.lock().unwrap_or_else(|e| e.into_inner());
        r.retain(|h| h.join.as_ref().is_some_and(|j| !j.is_finished()));
        r.push(h);
    }

    /// Stops discovery and every loop. With `stale` (job removed) the loops retire and write
    /// their stale markers; without (shutdown) their handles are returned to be awaited.
    fn stop(&self, stale: bool) -> Vec<JoinHandle<ScrapeCache>> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.stopped = true;
        for t in st.sd_tasks.drain(..) {
            t.abort();
        }
        let mut joins = Vec::new();
        let loops: Vec<LoopHandle> = st.loops.drain().map(|(_, h)| h).collect();
        drop(st);
        for mut h in loops {
            if stale {
                self.retire(h, true);
            } else {
                let _ = h.control.send(Control::Stop { stale: false });
                joins.extend(h.join.take());
            }
        }
        joins
    }
}
