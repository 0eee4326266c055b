//! `edgeprom check config|rules` and `edgeprom import openmetrics`: offline commands with
//! promtool's output shape and exit codes (0 fine, 1 failed). They report to the terminal.
#![allow(clippy::print_stdout)]

use crate::cli::ImportArgs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Expands rule-file globs (already anchored at the config's directory) to files, sorted.
pub fn expand_rule_globs(globs: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for g in globs {
        let paths = glob::glob(g).map_err(|e| format!("invalid rule file glob {g:?}: {e}"))?;
        for p in paths {
            out.push(p.map_err(|e| format!("cannot read {}: {e}", e.path().display()))?);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Checks config files like `promtool check config`.
pub fn check_config(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for f in files {
        let _ = writeln!(out, "Checking {}", f.display());
        match crate::config::load_file(f) {
            Ok(cfg) => match expand_rule_globs(&cfg.rule_files) {
                Ok(rule_files) => {
                    let _ = writeln!(out, "  SUCCESS: {} rule files found", rule_files.len());
                    let _ = writeln!(
                        out,
                        " SUCCESS: {} is valid prometheus config file syntax",
                        f.display()
                    );
                    let _ = writeln!(out);
                    if check_rule_files(&mut out, &rule_files) {
                        failed = true;
                    }
                }
                Err(e) => {
                    failed = true;
                    eprintln!("  FAILED: {e}");
                }
            },
            Err(e) => {
                failed = true;
                let _ = writeln!(out);
                eprintln!("  FAILED: {}", crate::app::error_chain(&e));
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Checks rule files like `promtool check rules`.
pub fn check_rules(files: &[PathBuf]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    if check_rule_files(&mut out, files) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Returns true when any file failed.
fn check_rule_files(out: &mut impl Write, files: &[PathBuf]) -> bool {
    let mut failed = false;
    for f in files {
        let _ = writeln!(out, "Checking {}", f.display());
        match std::fs::read_to_string(f) {
            Ok(_) => {
                // Rule-file validation arrives with the rules engine; until then a readable
                // file is all that is checked here.
                let _ = writeln!(out);
            }
            Err(e) => {
                failed = true;
                eprintln!("  FAILED: cannot read {}: {e}", f.display());
            }
        }
    }
    failed
}

/// Argument checks for `import openmetrics`, then the import itself.
pub fn import_openmetrics(a: &ImportArgs) -> ExitCode {
    if let Err(e) = check_import_args(&a.file, &a.storage_path) {
        eprintln!("edgeprom: {e}");
        return ExitCode::from(1);
    }
    let opts = crate::tsdb::Options {
        path: a.storage_path.clone(),
        retention_time: std::time::Duration::ZERO,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    match crate::tsdb::import_openmetrics(&a.file, opts) {
        Ok(stats) => {
            println!(
                "imported {} samples from {} in {:.1?}",
                stats.samples,
                a.file.display(),
                started.elapsed()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "edgeprom: import of {} failed: {}",
                a.file.display(),
                crate::app::error_chain(&e)
            );
            ExitCode::from(1)
        }
    }
}

fn check_import_args(file: &Path, dir: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(file)
        .map_err(|e| format!("cannot read input file {}: {e}", file.display()))?;
    if !meta.is_file() {
        return Err(format!("input {} is not a regular file", file.display()));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(format!(
            "--storage.tsdb.path {} exists and is not a directory",
            dir.display()
        ));
    }
    Ok(())
}
