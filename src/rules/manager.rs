//! The rule manager: loads rule files, runs one task per group at the group's aligned interval,
//! replaces groups on reload while keeping the state of unchanged rules, and serves the rules and
//! alerts APIs. Follows Prometheus's `rules/manager.go` (`Update`, `LoadGroups`, `run`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::model::Labels;
use crate::shutdown::Shutdown;
use crate::storage::{Appendable, Queryable};

use super::file::load_file;
use super::group::{now_ms, Deps, Group};
use super::{NotifyFn, ParseFn, QueryFn};

/// How the manager is wired in; `app` builds the closures.
pub struct RuleManagerOptions {
    /// Instant queries for rules and templates.
    pub query: QueryFn,
    /// Expression validation for loading.
    pub parse: ParseFn,
    /// Where firing and resolved alerts go (the notifier's `send`).
    pub notify: NotifyFn,
    /// Where recorded series, `ALERTS` and `ALERTS_FOR_STATE` are written.
    pub appendable: Arc<dyn Appendable>,
    /// Reads `ALERTS_FOR_STATE` to restore `for` state after a restart; `None` skips restoring.
    pub queryable: Option<Arc<dyn Queryable>>,
    /// The server's `external_labels` (for `$externalLabels`).
    pub external_labels: Labels,
    /// The server's external URL (for `$externalURL` and alert generator URLs).
    pub external_url: String,
    /// `global.evaluation_interval`.
    pub default_interval: Duration,
    /// `global.rule_query_offset` (default 0).
    pub default_query_offset: Duration,
    /// `--rules.alert.resend-delay` (default 1m): how often a firing alert is re-sent.
    pub resend_delay: Duration,
    /// `--rules.alert.for-outage-tolerance` (default 1h): how old `for` state may be restored.
    pub outage_tolerance: Duration,
    /// `--rules.alert.for-grace-period` (default 10m): minimum wait after a restore.
    pub for_grace_period: Duration,
}

impl RuleManagerOptions {
    /// Options with Prometheus's defaults for everything but the wiring.
    pub fn new(
        query: QueryFn,
        parse: ParseFn,
        notify: NotifyFn,
        appendable: Arc<dyn Appendable>,
        queryable: Option<Arc<dyn Queryable>>,
    ) -> Self {
        RuleManagerOptions {
            query,
            parse,
            notify,
            appendable,
            queryable,
            external_labels: Labels::empty(),
            external_url: String::new(),
            default_interval: Duration::from_secs(60),
            default_query_offset: Duration::ZERO,
            resend_delay: Duration::from_secs(60),
            outage_tolerance: Duration::from_secs(3600),
            for_grace_period: Duration::from_secs(600),
        }
    }
}

/// The options a config reload may change (Prometheus's `Manager.Update` arguments).
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSettings {
    /// `global.external_labels` (for `$externalLabels`).
    pub external_labels: Labels,
    /// The external URL (for `$externalURL` and alert generator URLs).
    pub external_url: String,
    /// `global.evaluation_interval`: the interval of groups without their own.
    pub default_interval: Duration,
    /// `global.rule_query_offset`: the offset of groups without their own.
    pub default_query_offset: Duration,
}

/// The dependencies every group task reads at each evaluation; replaced as a whole when a
/// reload changes [`RuleSettings`], so running groups pick up new external labels and URL.
type SharedDeps = Arc<RwLock<Arc<Deps>>>;

fn current(deps: &SharedDeps) -> Arc<Deps> {
    deps.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A group and, while the manager runs, its task.
struct Slot {
    group: Arc<Group>,
    /// `Some(mark_stale)` stops the task; `mark_stale` writes stale markers for its series.
    stop: Option<watch::Sender<Option<bool>>>,
    task: Option<JoinHandle<()>>,
    /// Whether `for` state is still to be restored after the first evaluation.
    restore: bool,
}

#[derive(Default)]
struct Inner {
    /// Groups in file order, then group order.
    slots: Vec<Slot>,
    /// The runtime the group tasks run on; set by `run`.
    runtime: Option<tokio::runtime::Handle>,
    /// Whether `load` ran once: only groups loaded at start restore `for` state.
    loaded_once: bool,
}

/// Loads and evaluates rule groups.
pub struct RuleManager {
    deps: SharedDeps,
    parse: ParseFn,
    /// The intervals groups without their own get; changed only by a successful `apply`.
    defaults: Mutex<(Duration, Duration)>,
    inner: Mutex<Inner>,
}

impl RuleManager {
    /// A manager without groups; call [`RuleManager::load`] and [`RuleManager::run`].
    pub fn new(opts: RuleManagerOptions) -> Arc<Self> {
        Arc::new(RuleManager {
            deps: Arc::new(RwLock::new(Arc::new(Deps {
                query: opts.query,
                notify: opts.notify,
                appendable: opts.appendable,
                queryable: opts.queryable,
                external_labels: opts.external_labels,
                external_url: opts.external_url,
                resend_delay: opts.resend_delay,
                outage_tolerance: opts.outage_tolerance,
                for_grace_period: opts.for_grace_period,
            }))),
            parse: opts.parse,
            defaults: Mutex::new((opts.default_interval, opts.default_query_offset)),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads (or reloads) rule files. On any error nothing changes and every problem is returned,
    /// one promtool-style line each. Unchanged groups keep running untouched; changed groups are
    /// replaced and take over alert state and series of rules with the same name and labels;
    /// removed groups stop and mark their series stale.
    pub fn load(&self, files: &[PathBuf]) -> Result<(), Vec<String>> {
        let settings = self.settings();
        self.apply(files, settings)
    }

    /// The current reloadable settings.
    pub fn settings(&self) -> RuleSettings {
        let d = current(&self.deps);
        let (default_interval, default_query_offset) =
            *self.defaults.lock().unwrap_or_else(|e| e.into_inner());
        RuleSettings {
            external_labels: d.external_labels.clone(),
            external_url: d.external_url.clone(),
            default_interval,
            default_query_offset,
        }
    }

    /// Loads rule files with new settings (a config reload, as Prometheus's `Update`). On error
    /// nothing changes. Otherwise running groups evaluate with the new external labels and URL
    /// from their next evaluation on, and groups whose interval or offset comes from a changed
    /// default are replaced like changed groups (keeping their alert state), as in [`load`].
    ///
    /// [`load`]: RuleManager::load
    pub fn apply(&self, files: &[PathBuf], settings: RuleSettings) -> Result<(), Vec<String>> {
        let mut specs = Vec::new();
        let mut errs = Vec::new();
        for f in files {
            match load_file(f, &self.parse) {
                Ok(g) => specs.extend(g),
                Err(e) => errs.extend(e.into_iter().map(|e| e.to_string())),
            }
        }
        let mut groups = Vec::with_capacity(specs.len());
        let mut seen = std::collections::HashSet::new();
        for s in specs {
            let key = format!("{};{}", s.file, s.name);
            if !seen.insert(key.clone()) {
                errs.push(format!("{}: group {:?} is loaded twice", s.file, s.name));
                continue;
            }
            match Group::new(s, settings.default_interval, settings.default_query_offset) {
                Ok(g) => groups.push(Arc::new(g)),
                Err(e) => errs.push(format!("{key}: {e}")),
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let mut inner = self.lock();
        *self.defaults.lock().unwrap_or_else(|e| e.into_inner()) =
            (settings.default_interval, settings.default_query_offset);
        {
            let mut d = self.deps.write().unwrap_or_else(|e| e.into_inner());
            if d.external_labels != settings.external_labels
                || d.external_url != settings.external_url
            {
                let mut nd = Deps::clone(&d);
                nd.external_labels = settings.external_labels;
                nd.external_url = settings.external_url;
                *d = Arc::new(nd);
            }
        }
        let should_restore = !inner.loaded_once;
        inner.loaded_once = true;
        let mut old: HashMap<String, Slot> = inner
            .slots
            .drain(..)
            .map(|s| (s.group.key.clone(), s))
            .collect();
        let rt = inner.runtime.clone();
        let mut slots = Vec::with_capacity(groups.len());
        for g in groups {
            match old.remove(&g.key) {
                Some(o)
                    if o.group.spec == g.spec
                        && o.group.interval == g.interval
                        && o.group.query_offset == g.query_offset =>
                {
                    slots.push(o);
                }
                Some(mut o) => {
                    // Rules without a predecessor have nothing to restore; matched rules take
                    // their predecessor's flag in `copy_state_from`.
                    g.mark_restored();
                    let prev = match (o.stop.take(), o.task.take()) {
                        (Some(stop), Some(task)) => {
                            let _ = stop.send(Some(false));
                            Some((o.group.clone(), task))
                        }
                        _ => {
                            g.copy_state_from(&o.group);
                            None
                        }
                    };
                    slots.push(self.slot(g, rt.as_ref(), prev, false));
                }
                None => {
                    if !should_restore {
                        g.mark_restored();
                    }
                    slots.push(self.slot(g, rt.as_ref(), None, should_restore));
                }
            }
        }
        for (_, mut o) in old {
            o.group.unregister_metrics();
            match o.stop.take() {
                Some(stop) => {
                    let _ = stop.send(Some(true));
                }
                None => o.group.mark_all_stale(&current(&self.deps), now_ms()),
            }
        }
        inner.slots = slots;
        Ok(())
    }

    /// A slot for `g`, with its task started when the manager runs.
    fn slot(
        &self,
        g: Arc<Group>,
        rt: Option<&tokio::runtime::Handle>,
        prev: Option<(Arc<Group>, JoinHandle<()>)>,
        restore: bool,
    ) -> Slot {
        match rt {
            Some(rt) => {
                let (tx, rx) = watch::channel(None);
                let task = rt.spawn(group_task(g.clone(), self.deps.clone(), rx, prev, restore));
                Slot {
                    group: g,
                    stop: Some(tx),
                    task: Some(task),
                    restore: false,
                }
            }
            None => Slot {
                group: g,
                stop: None,
                task: None,
                restore,
            },
        }
    }

    /// Runs every group until shutdown, then lets running evaluations finish.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        {
            let mut inner = self.lock();
            inner.runtime = Some(tokio::runtime::Handle::current());
            let slots = std::mem::take(&mut inner.slots);
            let rt = inner.runtime.clone();
            inner.slots = slots
                .into_iter()
                .map(|s| self.slot(s.group, rt.as_ref(), None, s.restore))
                .collect();
        }
        shutdown.started().await;
        let tasks: Vec<JoinHandle<()>> = {
            let mut inner = self.lock();
            inner.runtime = None;
            inner
                .slots
                .iter_mut()
                .filter_map(|s| {
                    if let Some(stop) = s.stop.take() {
                        let _ = stop.send(Some(false));
                    }
                    s.task.take()
                })
                .collect()
        };
        for t in tasks {
            let _ = t.await;
        }
    }

    /// The current groups, for the APIs.
    pub(crate) fn groups(&self) -> Vec<Arc<Group>> {
        self.lock().slots.iter().map(|s| s.group.clone()).collect()
    }

    /// The largest `query_offset` of the loaded groups: rule output is stamped that far in the
    /// past, which readers of recent data (remote write) must wait for.
    pub fn max_query_offset(&self) -> Duration {
        self.groups()
            .iter()
            .map(|g| g.query_offset)
            .max()
            .unwrap_or_default()
    }

    /// Evaluates every group once at `t_ms`, synchronously (for tests and one-shot tools).
    pub fn eval_all_at(&self, t_ms: i64) {
        let deps = current(&self.deps);
        for g in self.groups() {
            g.eval(&deps, t_ms);
        }
    }

    /// Restores `for` state of every group at `t_ms` (done by `run` after the first evaluation).
    pub fn restore_all_at(&self, t_ms: i64) {
        let deps = current(&self.deps);
        for g in self.groups() {
            g.restore_for_state(&deps, t_ms);
        }
    }
}

/// One group's loop: wait for the aligned timestamp, evaluate, repeat; count missed iterations.
async fn group_task(
    g: Arc<Group>,
    deps: SharedDeps,
    mut stop: watch::Receiver<Option<bool>>,
    prev: Option<(Arc<Group>, JoinHandle<()>)>,
    restore: bool,
) {
    if let Some((old, task)) = prev {
        // The old group finishes its evaluation first, so its state is final when copied.
        let _ = task.await;
        g.copy_state_from(&old);
    }
    let interval = g.interval.as_millis() as i64;
    let mut ts = g.eval_timestamp(now_ms()) + interval;
    let mut first = true;
    let mark_stale = loop {
        let wait = Duration::from_millis((ts - now_ms()).max(0) as u64);
        tokio::select! {
            r = stop.wait_for(|s| s.is_some()) => break r.ok().and_then(|s| *s).unwrap_or(false),
            _ = tokio::time::sleep(wait) => {}
        }
        let (g2, d2) = (g.clone(), current(&deps));
        let do_restore = first && restore;
        let _ = tokio::task::spawn_blocking(move || {
            g2.eval(&d2, ts);
            if do_restore {
                g2.restore_for_state(&d2, now_ms());
            }
        })
        .await;
        first = false;
        ts = g.advance(ts, now_ms());
    };
    if mark_stale {
        let (g2, d2) = (g.clone(), current(&deps));
        let _ = tokio::task::spawn_blocking(move || g2.mark_all_stale(&d2, now_ms())).await;
    }
}

#[cfg(test)]
mod tests;
