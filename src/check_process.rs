//! Whether this process is `kea-dhcp4 -T`: Kea ≥ 2.4 checks a configuration
//! by loading its hook libraries for real (version(), load(),
//! dhcp4_srv_configured, unload()) in a short-lived process, often beside the
//! running server with the same configuration. There the hook must validate
//! its parameters and start nothing: no metrics port (the server holds it),
//! no state file (the server owns it), no worker or scheduler thread (the
//! scheduler would rediscover the server's due BMCs), no BMC, no NetBox.
//!
//! Kea tells a hook nothing about it. The one sign found is the process's
//! own command line, so it is read from /proc/self/cmdline, once.

use std::sync::OnceLock;

/// True when this process was started with Kea's `-T` option.
pub fn is_config_check() -> bool {
    static CHECK: OnceLock<bool> = OnceLock::new();
    *CHECK.get_or_init(|| {
        std::fs::read("/proc/self/cmdline")
            .map(|raw| {
                let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
                // argv[0] is the program; what follows are its options.
                has_test_option(args.iter().skip(1).copied())
            })
            .unwrap_or(false)
    })
}

/// Options of kea-dhcp4 that take a value (getopt "c:p:P:"), so a `T` inside
/// their value is not the option.
const WITH_VALUE: &[u8] = b"cpP";

/// Reads `args` as GNU getopt does: `-T` alone or in a cluster (`-dT`),
/// anywhere before `--` (operands are skipped over, not an end); `-c T` and
/// `-cT` name a file called T.
fn has_test_option<'a>(args: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut args = args;
    while let Some(arg) = args.next() {
        if arg == b"--" {
            return false;
        }
        if arg.len() < 2 || arg[0] != b'-' {
            continue;
        }
        for (i, c) in arg.iter().enumerate().skip(1) {
            if *c == b'T' {
                return true;
            }
            if WITH_VALUE.contains(c) {
                if i + 1 == arg.len() {
                    // The value is the next argument.
                    args.next();
                }
                break;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::has_test_option;

    fn check(args: &[&str]) -> bool {
        has_test_option(args.iter().map(|a| a.as_bytes()))
    }

    #[test]
    fn finds_test_option_as_getopt_does() {
        assert!(check(&["-T", "kea.conf"]));
        assert!(check(&["-d", "-T", "kea.conf"]));
        assert!(check(&["-dT", "kea.conf"]));
        assert!(check(&["-c", "kea.conf", "-T"]));
        assert!(check(&["kea.conf", "-T"]));
    }

    #[test]
    fn ignores_t_and_values_and_operands() {
        assert!(!check(&[]));
        assert!(!check(&["-c", "kea.conf"]));
        assert!(!check(&["-t", "kea.conf"]));
        assert!(!check(&["-c", "-T"]));
        assert!(!check(&["-cT"]));
        assert!(!check(&["-p", "67", "-P", "68", "-c", "T.conf"]));
        assert!(!check(&["--", "-T"]));
        assert!(!check(&["-", "T"]));
    }
}
