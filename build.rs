//! Compiles the C++ shim against Kea's headers, links Kea's libraries and
//! generates the Rust side of `include/bmc_discovery.h` with bindgen.
//!
//! `KEA_INCLUDE_DIR` (default `/usr/include/kea`) and `KEA_LIB_DIR` (default:
//! the linker's search path) point at another Kea build.

use std::env;
use std::path::{Path, PathBuf};

const HEADER: &str = "include/bmc_discovery.h";
const SHIM_SOURCES: &[&str] = &["src/shim/callouts.cc", "src/shim/log.cc"];
/// The Kea libraries whose symbols the shim uses directly.
const KEA_LIBS: &[&str] = &[
    "kea-dhcpsrv",
    "kea-dhcp++",
    "kea-hooks",
    "kea-stats",
    "kea-cc",
    "kea-log",
    "kea-asiolink",
    "kea-exceptions",
];

fn main() {
    println!("cargo:rerun-if-env-changed=KEA_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=KEA_LIB_DIR");
    println!("cargo:rerun-if-changed={HEADER}");
    for src in SHIM_SOURCES {
        println!("cargo:rerun-if-changed={src}");
    }

    let kea_include =
        PathBuf::from(env::var("KEA_INCLUDE_DIR").unwrap_or_else(|_| "/usr/include/kea".into()));
    if !kea_include.join("hooks/hooks.h").is_file() {
        panic!(
            "Kea headers not found: {} has no hooks/hooks.h; install Debian's kea-dev \
             (see README.md) or set KEA_INCLUDE_DIR to the directory holding hooks/hooks.h",
            kea_include.display()
        );
    }

    compile_shim(&kea_include);
    link_kea();
    generate_bindings();
}

fn compile_shim(kea_include: &Path) {
    let mut build = cc::Build::new();
    // Debian 12's kea-dev 2.2.0 lacks dhcpsrv/cfg_globals.h; use our stand-in
    // only when the system has none (see the header's comment).
    if !kea_include.join("dhcpsrv/cfg_globals.h").is_file() {
        println!("cargo:rerun-if-changed=include/kea-compat/dhcpsrv/cfg_globals.h");
        build.include("include/kea-compat");
    }
    build
        .cpp(true)
        .std("c++14")
        .include("include")
        // Kea's and Boost's headers are not ours to keep warning-free.
        .flag("-isystem")
        .flag(
            kea_include
                .to_str()
                .expect("KEA_INCLUDE_DIR must be valid UTF-8"),
        )
        .flag("-Wall")
        .flag("-Wextra")
        .flag("-Werror")
        .flag("-fvisibility=hidden");
    for src in SHIM_SOURCES {
        build.file(src);
    }
    build.compile("bmc_discovery_shim");
}

fn link_kea() {
    if let Ok(dir) = env::var("KEA_LIB_DIR") {
        println!("cargo:rustc-link-search=native={dir}");
    }
    for lib in KEA_LIBS {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    println!("cargo:rustc-link-lib=dylib=stdc++");
}

fn generate_bindings() {
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindgen::Builder::default()
        .header(HEADER)
        .allowlist_function("shim_.*|bmc_.*")
        .allowlist_type("bmc_.*")
        .allowlist_var("BMC_.*")
        .use_core()
        .derive_default(false)
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on {HEADER}: {e}"))
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs to OUT_DIR");
}
