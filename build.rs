//! Link settings for the `secret-sync` binary. Nothing else is built here.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    // Packed relative relocations (DT_RELR, glibc 2.36+, GNU ld 2.38+; the image's builder and runtime
    // are Debian 12). The loader rewrites every pointer of a position-independent binary at start-up,
    // reading a relocation table that was 2.4 MB in ours and stayed resident; packed, it is a few KB.
    // Same binary, same ASLR; only the table's encoding changes (docs/memory.md).
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
