//! `krew-check MANIFEST [--archive-dir DIR] [--require PLATFORMS]`: validate a
//! krew plugin manifest against krew's rules, and each platform's archive
//! found in DIR (by the file name at the end of its `uri`) against its entry.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Validate a krew plugin manifest (and its archives)")]
struct Args {
    /// The manifest, named <plugin>.yaml.
    manifest: PathBuf,
    /// Check the archives in this folder against their platform entries.
    #[arg(long)]
    archive_dir: Option<PathBuf>,
    /// Platforms that must be listed, e.g. linux/amd64,darwin/arm64.
    #[arg(long, value_delimiter = ',')]
    require: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let stem = args
        .manifest
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    let yaml = match std::fs::read_to_string(&args.manifest) {
        Ok(y) => y,
        Err(e) => {
            eprintln!("krew-check: cannot read {}: {e}", args.manifest.display());
            return ExitCode::FAILURE;
        }
    };
    let (plugin, mut problems) = match e2e::krew::validate_manifest(&stem, &yaml) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("krew-check: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listed: Vec<String> = plugin
        .spec
        .platforms
        .iter()
        .filter_map(|p| p.os_arch())
        .collect();
    for req in &args.require {
        if !listed.contains(req) {
            problems.push(format!("platform {req} is required but not listed"));
        }
    }
    let mut checked = 0;
    if let Some(dir) = &args.archive_dir {
        for p in &plugin.spec.platforms {
            let file = p.uri.rsplit('/').next().unwrap_or_default();
            let path = dir.join(file);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    checked += 1;
                    problems.extend(e2e::krew::check_archive(p, &bytes));
                }
                Err(e) => problems.push(format!(
                    "{}: cannot read {}: {e}",
                    p.os_arch().unwrap_or_default(),
                    path.display()
                )),
            }
        }
    }
    if problems.is_empty() {
        println!(
            "{}: valid krew manifest for {} {} ({}; {checked} archive(s) checked)",
            args.manifest.display(),
            plugin.metadata.name,
            plugin.spec.version,
            listed.join(", ")
        );
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("{}: {p}", args.manifest.display());
        }
        ExitCode::FAILURE
    }
}
