//! A BMC's answers -> the inventory discovery records: the service root,
//! collections, system, manager, chassis, their sub-resources and the
//! vendors' OEM resources, through the client's budgets (defaults), the
//! pre-parse shape check and serde_json, then the walk and the vendor
//! modules. No network: the input is the BMC.
//!
//! Input: records separated by NUL bytes; each is a path and query
//! (`/redfish/v1/Systems/1`), a newline, and the body answered for it.
//! A path not in the input answers 404. tests/fuzz.sh seeds the corpus
//! with what real discoveries of the shared mockups fetch.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use dhcp_bmc_discovery::redfish::fuzzing::{self, Canned};
use dhcp_bmc_discovery::redfish::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut answers: HashMap<String, Vec<u8>> = HashMap::new();
    for record in data.split(|b| *b == 0) {
        let (path, body) = match record.iter().position(|b| *b == b'\n') {
            Some(i) => (&record[..i], &record[i + 1..]),
            None => (record, &[][..]),
        };
        if let Ok(path) = std::str::from_utf8(path) {
            answers
                .entry(path.to_string())
                .or_insert_with(|| body.to_vec());
        }
    }
    // Links name a resource with or without a trailing slash (the root is
    // asked for as /redfish/v1/); either finds the record.
    let canned: Canned = Arc::new(move |path: &str| {
        let (p, q) = path
            .split_once('?')
            .map_or((path, None), |(p, q)| (p, Some(q)));
        let trimmed = p.trim_end_matches('/');
        let with_query = |p: &str| q.map_or_else(|| p.to_string(), |q| format!("{p}?{q}"));
        answers
            .get(path)
            .or_else(|| answers.get(&with_query(trimmed)))
            .or_else(|| answers.get(&with_query(&format!("{trimmed}/"))))
            .cloned()
    });
    // The engine's own budgets. One request at a time: the same fetches
    // as in parallel, but deterministic, and no thread per input.
    let limits = Limits {
        parallel_requests: 1,
        ..Limits::default()
    };
    let found = fuzzing::inventory(canned, limits, Some("b0:7b:25:d6:51:82"));
    if let Ok((inv, _)) = &found {
        // What the state file and NetBox get must serialise.
        serde_json::to_vec(inv).expect("an inventory serialises");
    }
    // To see what an input becomes (docs/FUZZING.md).
    if std::env::var_os("FUZZ_SHOW").is_some() {
        match &found {
            Ok((inv, warnings)) => eprintln!(
                "inventory: {}\nwarnings: {warnings:?}",
                serde_json::to_string(inv).unwrap_or_default()
            ),
            Err(e) => eprintln!("discovery failed: {e:?}"),
        }
    }
});
