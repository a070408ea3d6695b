//! A control command as Kea hands it over (JSON text) -> the answer: the
//! request parse, the command name, and each bmc-* command's argument
//! readers, on a loaded hook with a state file that knows one BMC.
//! bmc-reconcile and bmc-pool-report also read Kea's lease database and
//! subnets, which a fuzz process has none of: their arguments are still
//! read, and they answer with the error for a missing lease database.
#![no_main]

use std::sync::{Arc, OnceLock};

use dhcp_bmc_discovery::commands::handle;
use dhcp_bmc_discovery::config::Config;
use dhcp_bmc_discovery::hook::Hook;
use dhcp_bmc_discovery::intake::filter::Filter;
use dhcp_bmc_discovery::state::{Lease, Store};
use dhcp_bmc_discovery::work::pipeline::LogPipeline;
use dhcp_bmc_discovery::work::Services;
use libfuzzer_sys::fuzz_target;

fn hook() -> &'static Hook {
    static H: OnceLock<Hook> = OnceLock::new();
    H.get_or_init(|| {
        let store = Store::in_memory().expect("an in-memory state file opens");
        let lease = Lease {
            mac: "b0:7b:25:d6:51:82",
            ip: "10.0.5.17",
            subnet_id: 1,
            hostname: "us3-cab10-ru17-idrac",
        };
        store
            .begin(&lease, 0, true)
            .expect("the state file takes a BMC");
        let config = Config::from_json(r#"{"workers": 1, "queue-capacity": 4}"#)
            .expect("the fuzz hook's parameters are valid");
        let filter = Filter::new(&config).expect("no patterns to compile");
        let services = Services {
            store: Some(Arc::new(store)),
            ..Services::default()
        };
        Hook::start(config, filter, Arc::new(LogPipeline), services).expect("the hook starts")
    })
}

fuzz_target!(|data: &[u8]| {
    let answer = handle(data, Some(hook()));
    let result = answer["result"].as_i64();
    assert!(matches!(result, Some(0..=3)), "answer {answer}");
    assert!(answer["text"].is_string(), "answer {answer}");
});
