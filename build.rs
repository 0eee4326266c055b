//! Records the git revision and build date for `edgeprom_build_info` and the buildinfo API.

fn main() {
    let rev = std::env::var("EDGEPROM_REVISION").ok().or_else(|| {
        std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    });
    println!(
        "cargo:rustc-env=EDGEPROM_REVISION={}",
        rev.unwrap_or_else(|| "unknown".into())
    );
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    println!("cargo:rustc-env=EDGEPROM_BUILD_UNIX={secs}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-env-changed=EDGEPROM_REVISION");
}
