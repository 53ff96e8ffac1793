//! Builds the browser UI (`ui/`, TypeScript bundled by esbuild) into `ui/dist`, which
//! `src/assets.rs` embeds. Needs Node.js and npm; `npm ci` runs once when `node_modules` is
//! missing. Set `SMON_SKIP_UI_BUILD=1` to use an existing `ui/dist` as it is.

use std::path::Path;
use std::process::Command;

fn run(dir: &Path, args: &[&str]) {
    let status = Command::new("npm").args(args).current_dir(dir).status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "`npm {}` in {} failed with {s}",
            args.join(" "),
            dir.display()
        ),
        Err(e) => panic!(
            "cannot run `npm {}` in {}: {e}. The web UI needs Node.js 20+ and npm (Debian: apt-get install nodejs npm)",
            args.join(" "),
            dir.display()
        ),
    }
}

fn main() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    for p in [
        "src",
        "index.html",
        "login.html",
        "package.json",
        "package-lock.json",
        "tsconfig.json",
        "build.mjs",
    ] {
        println!("cargo:rerun-if-changed=ui/{p}");
    }
    println!("cargo:rerun-if-env-changed=SMON_SKIP_UI_BUILD");
    if std::env::var_os("SMON_SKIP_UI_BUILD").is_some() && ui.join("dist/index.html").exists() {
        return;
    }
    if !ui.join("node_modules").exists() {
        run(&ui, &["ci", "--no-audit", "--no-fund"]);
    }
    run(&ui, &["run", "build"]);
}
