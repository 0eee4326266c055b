//! Imports an OpenMetrics file into a data directory and prints what it cost:
//! `cargo run --release --example tsdb_import -- FILE DIR`.
#![allow(clippy::print_stdout)]

fn main() {
    let mut a = std::env::args().skip(1);
    let (Some(file), Some(dir)) = (a.next(), a.next()) else {
        eprintln!("usage: tsdb_import FILE DIR");
        std::process::exit(2);
    };
    let opts = edgeprom::tsdb::Options {
        path: dir.into(),
        ..Default::default()
    };
    match edgeprom::tsdb::import_openmetrics(std::path::Path::new(&file), opts) {
        Ok(s) => println!(
            "{s:?}\nB/sample on disk {:.3}, written {:.3}",
            s.disk_bytes as f64 / s.samples as f64,
            s.bytes_written as f64 / s.samples as f64
        ),
        Err(e) => {
            eprintln!("import failed: {e}");
            std::process::exit(1);
        }
    }
}
