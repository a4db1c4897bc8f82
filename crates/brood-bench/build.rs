//! Records which brood sources this benchmark was built from, so a report
//! names them even when the work tree moves on while it runs.

use std::path::Path;
use std::process::Command;

fn main() {
    let brood = Path::new(env!("CARGO_MANIFEST_DIR")).join("../brood");
    println!("cargo:rerun-if-changed={}", brood.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        brood.join("Cargo.toml").display()
    );

    // FNV-1a over every source file's path and contents, in path order.
    let mut files = Vec::new();
    collect(&brood.join("src"), &mut files);
    files.push(brood.join("Cargo.toml"));
    files.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in &files {
        let rel = file.strip_prefix(&brood).unwrap_or(file);
        let bytes = std::fs::read(file).unwrap_or_default();
        for b in rel.to_string_lossy().bytes().chain(bytes) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }

    let git = |args: &[&str]| {
        Command::new("git")
            .arg("--no-optional-locks")
            .arg("-C")
            .arg(&brood)
            .args(args)
            .output()
            .ok()
    };
    // A commit changes the stamp without touching the sources: watch the
    // files git moves on commit too.
    let text = |o: std::process::Output| String::from_utf8_lossy(&o.stdout).trim().to_owned();
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"])
        .filter(|o| o.status.success())
        .map(text)
    {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
            .filter(|o| o.status.success())
            .map(text)
        {
            println!("cargo:rerun-if-changed={dir}/{branch}");
        }
    }
    let head = git(&["rev-parse", "--short", "HEAD"])
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let dirty = git(&["diff", "--quiet", "HEAD", "--", "src", "Cargo.toml"])
        .and_then(|o| o.status.code())
        .map(|code| code == 1);
    let commit = match (head, dirty) {
        (Some(h), Some(true)) => format!("commit {h} plus uncommitted changes"),
        (Some(h), _) => format!("commit {h}"),
        (None, _) => "no git commit known".to_owned(),
    };
    println!(
        "cargo:rustc-env=BROOD_BENCH_SOURCE={commit}, crates/brood/src content hash {hash:016x} (at build time)"
    );
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}
