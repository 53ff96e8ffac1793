//! Link settings of the `smon-agent` binary.
//!
//! Packed relative relocations (`-z pack-relative-relocs`, DT_RELR): a position-independent
//! Rust binary carries one 24-byte `.rela.dyn` entry per pointer the loader must relocate
//! (vtables, string tables): 552 KiB for the agent, read whole at every start and then part of
//! its resident memory. DT_RELR packs them into a bitmap of a few KiB (BENCHMARKS.md "Agent
//! memory"). It needs GNU ld 2.38 or lld 15 to link and glibc 2.36 to run (Debian 12 and
//! later); set `SMON_NO_RELR=1` to build for an older glibc.

fn main() {
    println!("cargo:rerun-if-env-changed=SMON_NO_RELR");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" && std::env::var_os("SMON_NO_RELR").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
