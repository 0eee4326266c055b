//! The only place that builds concrete components and spawns tasks: storage, scraping, rules,
//! the web server; config reloads, signals and the shutdown order (stop intake, then flush).

use crate::cli::ServerFlags;
use crate::config::{self, Config};
use crate::selfmetrics::Registry;
use crate::shutdown;
use crate::web::{self, ReloadRequest, RuntimeFacts, WebState};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The config is invalid.
    #[error("error loading config")]
    Config(#[from] config::ConfigError),
    /// The listen address is unusable.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--web.config.file` is invalid.
    #[error("error loading web config")]
    WebConfig(#[from] web::webconfig::WebConfigError),
    /// Any other start-up failure.
    #[error("{0}")]
    Other(String),
}

/// Where the config comes from.
#[derive(Clone, Debug)]
enum ConfigSource {
    File(PathBuf),
    Embedded,
}

impl ConfigSource {
    fn load(&self, self_address: &str) -> Result<Config, config::ConfigError> {
        match self {
            ConfigSource::File(p) => config::load_file(p),
            ConfigSource::Embedded => Ok(config::load_default(self_address)),
        }
    }
}

/// The address that the embedded default config scrapes: the listen address, with an
/// unspecified host replaced by loopback.
fn self_scrape_address(listen: &std::net::SocketAddr) -> String {
    let ip = if listen.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        listen.ip().to_string()
    };
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip
    };
    format!("{host}:{}", listen.port())
}

/// Runs the server until SIGTERM, SIGINT or `/-/quit`.
pub async fn run(flags: ServerFlags) -> Result<(), AppError> {
    let start_ms = web::now_ms();
    // First, so that a SIGTERM during start-up (storage replay, first config) is queued and
    // answered with a graceful stop once the server is up, instead of the default action
    // killing the process between `listening` and the main loop.
    let mut sighup = signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut sigterm = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = signal(tokio::signal::unix::SignalKind::interrupt())?;
    crate::build_info::register();
    crate::selfmetrics::register_process_metrics();
    let reg = Registry::global();
    let reload_ok = reg.gauge(
        "prometheus_config_last_reload_successful",
        "Whether the last configuration reload attempt was successful.",
        &[],
    );
    let reload_ts = reg.gauge(
        "prometheus_config_last_reload_success_timestamp_seconds",
        "Timestamp of the last successful configuration reload.",
        &[],
    );

    let source = match &flags.config_file {
        Some(p) => ConfigSource::File(p.clone()),
        None if std::path::Path::new("edgeprom.yml").exists() => {
            ConfigSource::File(PathBuf::from("edgeprom.yml"))
        }
        None => ConfigSource::Embedded,
    };
    let listener = tokio::net::TcpListener::bind(&flags.listen_address)
        .await
        .map_err(|source| AppError::Listen {
            addr: flags.listen_address.clone(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| AppError::Listen {
        addr: flags.listen_address.clone(),
        source,
    })?;
    let self_addr = self_scrape_address(&local);
    let cfg = Arc::new(source.load(&self_addr)?);
    match &source {
        ConfigSource::File(p) => tracing::info!(file = %p.display(), "loaded config file"),
        ConfigSource::Embedded => {
            tracing::info!(target_address = %self_addr, "no config file given and ./edgeprom.yml not found: using the embedded default config")
        }
    }

    let web_config = Arc::new(match &flags.web_config_file {
        Some(p) => web::webconfig::WebConfigWatcher::new(p)?,
        None => web::webconfig::WebConfigWatcher::disabled(),
    });

    let tsdb = crate::tsdb::Tsdb::open(tsdb_options(&flags))
        .map_err(|e| AppError::Other(format!("opening storage: {}", error_chain(&e))))?;
    tracing::info!(path = %flags.storage_path.display(), "storage opened");

    let (trigger, shutdown) = shutdown::channel();
    // Storage gets its own shutdown signal: it must outlive the scrapers and rules that append
    // to it, so it is stopped last, after intake has stopped.
    let (storage_trigger, storage_shutdown) = shutdown::channel();
    let storage_task = tokio::spawn(tsdb.clone().run(storage_shutdown));
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let (quit_tx, mut quit_rx) = mpsc::channel::<()>(1);

    let route_prefix = route_prefix(&flags);
    let retention = {
        let t = flags.effective_retention_time();
        match (t.is_zero(), flags.retention_size) {
            (false, 0) => config::format_duration(t),
            (true, s) => format!("{}MiB", s >> 20),
            (false, s) => format!("{} or {}MiB", config::format_duration(t), s >> 20),
        }
    };
    let scrape = crate::scrape::ScrapeManager::new(tsdb.clone());
    let engine = Arc::new(
        crate::promql::Engine::new(crate::promql::EngineOptions {
            lookback_delta: flags.lookback_delta,
            timeout: flags.query_timeout,
            max_samples: flags.query_max_samples,
            max_concurrency: flags.query_max_concurrency,
        })
        .with_per_step_stats(flags.feature_enabled("promql-per-step-stats")),
    );
    let external_url = flags
        .external_url
        .clone()
        .unwrap_or_else(|| format!("http://{self_addr}/"));
    // The Alertmanagers, external labels and relabeling come from `apply_config` below.
    let notifier = crate::notifier::Notifier::new(crate::notifier::NotifierOptions {
        queue_capacity: flags.notification_queue_capacity,
        ..Default::default()
    });
    let rules = {
        let (engine, tsdb_q) = (engine.clone(), tsdb.clone());
        let query: crate::rules::QueryFn = Arc::new(move |expr: &str, t_ms: i64| {
            let v = engine
                .instant(&*tsdb_q, expr, t_ms)
                .map_err(|e| e.to_string())?;
            v.into_samples().ok_or_else(|| {
                "rule expression did not return an instant vector or scalar".to_string()
            })
        });
        let n = notifier.clone();
        let notify: crate::rules::NotifyFn = Arc::new(move |alerts| n.send(alerts));
        let mut o = crate::rules::RuleManagerOptions::new(
            query,
            crate::check::promql_parse_fn(),
            notify,
            tsdb.clone(),
            Some(tsdb.clone()),
        );
        o.external_labels = cfg.global.external_labels.clone();
        o.external_url = external_url.clone();
        o.default_interval = cfg.global.evaluation_interval;
        o.default_query_offset = cfg.global.rule_query_offset;
        o.resend_delay = flags.rules_resend_delay;
        o.outage_tolerance = flags.rules_outage_tolerance;
        o.for_grace_period = flags.rules_for_grace_period;
        crate::rules::RuleManager::new(o)
    };
    let remote = crate::remote::RemoteWriter::with_options(
        tsdb.clone(),
        flags.storage_path.clone(),
        cfg.global.external_labels.clone(),
        crate::remote::WriterOptions {
            retention: match flags.effective_retention_time() {
                t if t.is_zero() => crate::remote::WriterOptions::default().retention,
                t => t,
            },
            ..Default::default()
        },
    );
    {
        let scrape = scrape.clone();
        remote.set_metadata_source(Arc::new(move || {
            scrape
                .metadata()
                .into_iter()
                .map(|m| crate::remote::proto::MetricMetadata {
                    kind: crate::remote::proto::MetricMetadata::kind_of(m.kind),
                    metric_family_name: m.family,
                    help: m.help,
                    unit: m.unit,
                })
                .collect()
        }));
    }
    let node = Arc::new(crate::node::NodeExporter::new(node_options(&flags)?));
    let mut texts: BTreeMap<String, web::TextFn> = BTreeMap::new();
    texts.insert(
        "/node/metrics".to_string(),
        Arc::new(move || {
            let mut out = String::with_capacity(32 << 10);
            node.collect(&mut out);
            // node_exporter also exposes its own process_* families, and dashboards built for
            // it (Node Exporter Full's "exporter" panels) read them from the node job.
            Registry::global().expose_prefix("process_", &mut out);
            out
        }),
    );
    let external_labels: SharedLabels =
        Arc::new(std::sync::RwLock::new(cfg.global.external_labels.clone()));
    let state = Arc::new(WebState {
        flags: flags.as_map(),
        enable_lifecycle: flags.enable_lifecycle,
        enable_admin_api: flags.enable_admin_api,
        route_prefix,
        external_url: flags
            .external_url
            .clone()
            .unwrap_or_else(|| format!("http://{self_addr}/")),
        ready: Default::default(),
        config: RwLock::new(cfg.clone()),
        runtime: RwLock::new(RuntimeFacts {
            reload_success: true,
            last_config_ms: web::now_ms(),
        }),
        start_ms,
        storage_retention: retention,
        reload_tx,
        quit_tx,
        apis: vec![
            query_api(engine.clone(), tsdb.clone()),
            tsdb_status_api(tsdb.clone()),
            web::tsdb_admin_api(tsdb.clone()),
            {
                let scrape = scrape.clone();
                Arc::new(move |path: &str, params: &[(String, String)]| {
                    scrape.handle_api(path, params)
                })
            },
            {
                let rules = rules.clone();
                Arc::new(move |path: &str, params: &[(String, String)]| {
                    rules.handle_api(path, params)
                })
            },
            {
                let notifier = notifier.clone();
                Arc::new(move |path: &str, params: &[(String, String)]| {
                    notifier.handle_api(path, params)
                })
            },
        ],
        raws: vec![federate_and_read(
            tsdb.clone(),
            flags.lookback_delta,
            external_labels.clone(),
        )],
        texts,
        web_config,
    });

    let server = tokio::spawn(web::serve(
        listener,
        state.clone(),
        flags.max_connections,
        flags.read_timeout,
        shutdown.clone(),
    ));
    tracing::info!(address = %local, "listening");

    let parts = Parts {
        external_labels,
        scrape: scrape.clone(),
        rules: rules.clone(),
        notifier: notifier.clone(),
        remote: remote.clone(),
        external_url: external_url.clone(),
    };
    apply_config(&cfg, &parts)?;
    tokio::spawn(rules.clone().run(shutdown.clone()));
    tokio::spawn(notifier.clone().run(shutdown.clone()));
    let remote_task = tokio::spawn(remote.clone().run(shutdown.clone()));
    // The first config is applied: ready.
    reload_ok.set(1.0);
    reload_ts.set(web::now_ms() as f64 / 1000.0);
    state.ready.store(true, Ordering::Release);
    crate::sdnotify::notify("READY=1");
    if let Some(every) = crate::sdnotify::watchdog_interval() {
        let mut sd = shutdown.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            loop {
                tokio::select! { _ = sd.started() => break, _ = t.tick() => { crate::sdnotify::notify("WATCHDOG=1"); } }
            }
        });
    }

    loop {
        let answer: Option<ReloadRequest> = tokio::select! {
            _ = sigterm.recv() => { tracing::info!("received SIGTERM, exiting gracefully"); break; }
            _ = sigint.recv() => { tracing::info!("received SIGINT, exiting gracefully"); break; }
            _ = quit_rx.recv() => { tracing::info!("received termination request via web service, exiting gracefully"); break; }
            _ = sighup.recv() => None,
            r = reload_rx.recv() => match r { Some(tx) => Some(tx), None => break },
        };
        let res = match source.load(&self_addr) {
            Ok(new_cfg) => match apply_config(&new_cfg, &parts) {
                Ok(()) => Ok(new_cfg),
                Err(e) => Err(error_chain(&e)),
            },
            Err(e) => Err(error_chain(&e)),
        };
        let res = match res {
            Ok(new_cfg) => {
                tracing::info!("completed loading of configuration file");
                // The reload metrics and runtime facts change before the new config is
                // published, so anyone who sees the new config also sees them.
                reload_ok.set(1.0);
                reload_ts.set(web::now_ms() as f64 / 1000.0);
                if let Ok(mut r) = state.runtime.write() {
                    *r = RuntimeFacts {
                        reload_success: true,
                        last_config_ms: web::now_ms(),
                    };
                }
                if let Ok(mut c) = state.config.write() {
                    *c = Arc::new(new_cfg);
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(err = %e, "error reloading config; keeping the running config");
                reload_ok.set(0.0);
                if let Ok(mut r) = state.runtime.write() {
                    r.reload_success = false;
                }
                Err(e)
            }
        };
        if let Some(tx) = answer {
            let _ = tx.send(res);
        }
    }

    crate::sdnotify::notify("STOPPING=1");
    state.ready.store(false, Ordering::Release);
    // Stop intake first (scrapes, then the web server), then storage flushes last.
    scrape.stop().await;
    trigger.trigger();
    let _ = server.await;
    let _ = remote_task.await;
    storage_trigger.trigger();
    let _ = storage_task.await;
    if let Err(e) = tsdb.close() {
        tracing::error!(err = %error_chain(&e), "final flush failed");
    }
    tracing::info!("see you next time!");
    Ok(())
}

/// The components a config is applied to.
struct Parts {
    scrape: Arc<crate::scrape::ScrapeManager>,
    rules: Arc<crate::rules::RuleManager>,
    notifier: Arc<crate::notifier::Notifier>,
    remote: Arc<crate::remote::RemoteWriter>,
    /// `global.external_labels` as `/federate` and `/api/v1/read` add them; replaced on reload.
    external_labels: SharedLabels,
    /// `--web.external-url` (or the default): rule templates and alert generator URLs.
    external_url: String,
}

/// Applies a (new) config to every component. The alerting section is validated and the rule
/// files are loaded first: if either fails, the rule manager keeps its groups and nothing else
/// is touched, so the old config stays whole. The rule manager picks up changed external labels
/// and `evaluation_interval`; the notifier its Alertmanagers, external labels and relabeling.
fn apply_config(cfg: &Config, p: &Parts) -> Result<(), AppError> {
    let files = crate::check::expand_rule_globs(&cfg.rule_files).map_err(AppError::Other)?;
    let alerting = crate::notifier::AlertingSetup::new(&cfg.alerting, &cfg.global.external_labels)
        .map_err(|e| AppError::Other(format!("alerting: {e}")))?;
    let mut settings = p.rules.settings();
    settings.external_labels = cfg.global.external_labels.clone();
    settings.external_url = p.external_url.clone();
    settings.default_interval = cfg.global.evaluation_interval;
    settings.default_query_offset = cfg.global.rule_query_offset;
    p.rules
        .apply(&files, settings)
        .map_err(|errs| AppError::Other(format!("loading rule files: {}", errs.join("; "))))?;
    p.notifier.apply(alerting);
    p.scrape
        .apply_config(&cfg.scrape_configs)
        .map_err(|e| AppError::Other(format!("applying scrape configs: {}", error_chain(&e))))?;
    p.remote
        .set_external_labels(cfg.global.external_labels.clone());
    *p.external_labels
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = cfg.global.external_labels.clone();
    // A scrape's samples are committed up to its timeout after their timestamp; a rule's, its
    // query offset after (plus the evaluation itself).
    let longest_timeout = cfg
        .scrape_configs
        .iter()
        .map(|s| s.scrape_timeout)
        .max()
        .unwrap_or_default();
    let lag = longest_timeout.max(p.rules.max_query_offset());
    p.remote.set_settle(lag + std::time::Duration::from_secs(5));
    p.remote.apply_config(&cfg.remote_write);
    Ok(())
}

/// The external labels that follow reloads, read by request handlers.
type SharedLabels = Arc<std::sync::RwLock<crate::model::Labels>>;

/// `GET /federate` and `POST /api/v1/read`, which need the request itself. Both read the
/// external labels of the config in force at the time of the request.
fn federate_and_read(
    tsdb: Arc<crate::tsdb::Tsdb>,
    lookback: std::time::Duration,
    shared_labels: SharedLabels,
) -> web::RawFn {
    use http::{header, HeaderValue, StatusCode};
    Arc::new(move |req: &web::Req| match req.path.as_str() {
        "/federate" => {
            let external_labels = shared_labels
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let (code, body) = crate::remote::federate(
                &*tsdb,
                &req.params,
                web::now_ms(),
                lookback.as_millis() as i64,
                &external_labels,
            );
            let mut r = web::text(StatusCode::from_u16(code).unwrap_or(StatusCode::OK), body);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::remote::federate::CONTENT_TYPE),
            );
            Some(r)
        }
        "/api/v1/read" if req.method == http::Method::POST => {
            let external_labels = shared_labels
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let (code, body, ct) =
                crate::remote::remote_read_with_labels(&*tsdb, &req.body, &external_labels);
            let mut r = web::text(StatusCode::from_u16(code).unwrap_or(StatusCode::OK), body);
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            if code == 200 {
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
            }
            Some(r)
        }
        _ => None,
    })
}

/// Storage options from the `--storage.tsdb.*` flags.
pub fn tsdb_options(flags: &ServerFlags) -> crate::tsdb::Options {
    crate::tsdb::Options {
        path: flags.storage_path.clone(),
        retention_time: flags.effective_retention_time(),
        retention_size: flags.retention_size,
        flush_interval: flags
            .flush_interval
            .unwrap_or(crate::tsdb::DEFAULT_FLUSH_INTERVAL),
        max_series: flags.max_series,
        read_cache_size: flags.read_cache_size as usize,
    }
}

/// The PromQL query API (`/api/v1/query`, `query_range`, `series`, `labels`, ...).
fn query_api(engine: Arc<crate::promql::Engine>, tsdb: Arc<crate::tsdb::Tsdb>) -> web::ApiFn {
    Arc::new(move |path, params| {
        let ctx = crate::promql::api::ApiContext {
            engine: &engine,
            queryable: &*tsdb,
            now_ms: web::now_ms(),
        };
        crate::promql::api::handle(path, params, &ctx).map(|r| (r.status, r.body))
    })
}

/// `/api/v1/status/tsdb` (`limit` defaults to 10, as in Prometheus).
fn tsdb_status_api(tsdb: Arc<crate::tsdb::Tsdb>) -> web::ApiFn {
    Arc::new(move |path, params| {
        if path != "/api/v1/status/tsdb" {
            return None;
        }
        let limit = match params
            .iter()
            .find(|(k, _)| k == "limit")
            .map(|(_, v)| v.parse::<usize>())
        {
            None => 10,
            Some(Ok(n)) if n > 0 => n,
            _ => {
                let body = serde_json::json!({"status": "error", "errorType": "bad_data", "error": "limit must be a positive number"});
                return Some((400, serde_json::to_vec(&body).unwrap_or_default()));
            }
        };
        let body = serde_json::json!({"status": "success", "data": tsdb.status(limit)});
        Some((200, serde_json::to_vec(&body).unwrap_or_default()))
    })
}

/// Node exporter options from the `--path.*` and `--[no-]collector.*` flags; an unknown
/// collector name is an error, as node_exporter's flag parser makes it.
fn node_options(flags: &ServerFlags) -> Result<crate::node::NodeOptions, AppError> {
    let mut o = crate::node::NodeOptions {
        procfs: flags.procfs.clone(),
        sysfs: flags.sysfs.clone(),
        rootfs: flags.rootfs.clone(),
        textfile_dir: flags.textfile_directory.clone(),
        ..Default::default()
    };
    for (name, on) in &flags.collector_switches {
        if !crate::node::COLLECTORS.iter().any(|(n, _)| n == name) {
            let known: Vec<&str> = crate::node::COLLECTORS.iter().map(|(n, _)| *n).collect();
            return Err(AppError::Other(format!(
                "unknown collector {name:?} in --collector.{name} (known: {})",
                known.join(", ")
            )));
        }
        if *on {
            o.enabled.insert(name.clone());
        } else {
            o.enabled.remove(name);
        }
    }
    Ok(o)
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal, AppError> {
    tokio::signal::unix::signal(kind)
        .map_err(|e| AppError::Other(format!("cannot install signal handler: {e}")))
}

/// The route prefix: the flag, else the path of the external URL; no trailing slash.
fn route_prefix(flags: &ServerFlags) -> String {
    let raw = match (&flags.route_prefix, &flags.external_url) {
        (Some(p), _) => p.clone(),
        (None, Some(u)) => u
            .split_once("://")
            .map(|(_, rest)| {
                rest.find('/')
                    .map(|i| rest[i..].to_string())
                    .unwrap_or_default()
            })
            .unwrap_or_default(),
        (None, None) => String::new(),
    };
    let trimmed = raw.trim_end_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

pub use crate::logging::error_chain;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn route_prefix_table() {
        let cases: &[(&[&str], &str)] = &[
            (&[], ""),
            (&["--web.route-prefix=/prom/"], "/prom"),
            (&["--web.route-prefix=prom"], "/prom"),
            (&["--web.external-url=http://pi.local:9090/edge/"], "/edge"),
            (&["--web.external-url=http://pi.local:9090"], ""),
            (
                &["--web.external-url=http://x/a", "--web.route-prefix=/"],
                "",
            ),
        ];
        for (args, want) in cases {
            let cli = crate::cli::Cli::try_parse_from(
                std::iter::once("edgeprom").chain(args.iter().copied()),
            )
            .unwrap();
            assert_eq!(route_prefix(&cli.server), *want, "{args:?}");
        }
    }

    #[test]
    fn self_address() {
        assert_eq!(
            self_scrape_address(&"0.0.0.0:9090".parse().unwrap()),
            "localhost:9090"
        );
        assert_eq!(
            self_scrape_address(&"127.0.0.1:1".parse().unwrap()),
            "127.0.0.1:1"
        );
        assert_eq!(self_scrape_address(&"[::1]:2".parse().unwrap()), "[::1]:2");
    }
}
