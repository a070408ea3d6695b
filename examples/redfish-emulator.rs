//! redfish-emulator: serve the real BMC payloads of ../shared/redfish-mockups
//! as many HTTPS BMCs on loopback addresses, for trying the hook and
//! bmc-discover without hardware. The same emulator the tests use.
//!
//!   redfish-emulator [--port N] [--ca-out FILE] [--latency-ms N] [--mockups DIR]
//!                    (--bmc ADDR=MODEL[#INSTANCE] ... | --all FIRST_ADDR)
//!
//! The payloads come from --mockups, else REDFISH_MOCKUPS, else
//! ../shared/redfish-mockups beside the repository.
//!
//! Every BMC accepts the username/password in EMULATOR_USERNAME /
//! EMULATOR_PASSWORD (default root / calvin). `--all 127.0.10.1` serves
//! every model, one per address counting up from FIRST_ADDR. Runs until
//! killed; prints each BMC on stdout.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::Duration;

use bmc_test_support::emulator;
use bmc_test_support::shared::find_mockups_dir;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redfish-emulator: {e}");
            let models = match find_mockups_dir() {
                Ok(_) => emulator::all_models().join(" "),
                Err(_) => "(give --mockups DIR to list them)".into(),
            };
            eprintln!(
                "usage: redfish-emulator [--port N] [--ca-out FILE] [--latency-ms N] [--mockups DIR] \
                 (--bmc ADDR=MODEL[#INSTANCE] ... | --all FIRST_ADDR)\nmodels: {models}"
            );
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut port = 8443u16;
    let mut ca_out = None;
    let mut latency = Duration::ZERO;
    let mut bmcs: Vec<(Ipv4Addr, String, u32)> = Vec::new();
    // --mockups first: the other arguments are checked against its models.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--mockups") {
        let dir = args.get(i + 1).ok_or("--mockups needs a value")?;
        if !std::path::Path::new(dir).is_dir() {
            return Err(format!("--mockups {dir}: not a directory"));
        }
        std::env::set_var("REDFISH_MOCKUPS", dir);
    }
    find_mockups_dir().map_err(|e| format!("{e} (or give --mockups DIR)"))?;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--mockups" => {
                value()?;
            }
            "--port" => {
                let v = value()?;
                port = v
                    .parse()
                    .map_err(|_| format!("--port: not a port: {v:?}"))?;
            }
            "--ca-out" => ca_out = Some(value()?),
            "--latency-ms" => {
                let v = value()?;
                latency = Duration::from_millis(
                    v.parse()
                        .map_err(|_| format!("--latency-ms: not a number: {v:?}"))?,
                );
            }
            "--bmc" => {
                let v = value()?;
                let (addr, rest) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--bmc wants ADDR=MODEL, got {v:?}"))?;
                let (model, inst) = rest.split_once('#').unwrap_or((rest, "0"));
                let addr: Ipv4Addr = addr
                    .parse()
                    .map_err(|_| format!("--bmc: bad address {addr:?}"))?;
                if !emulator::all_models().iter().any(|m| m == model) {
                    return Err(format!("--bmc: no model {model:?}"));
                }
                let inst = inst
                    .parse()
                    .map_err(|_| format!("--bmc: bad instance {inst:?}"))?;
                bmcs.push((addr, model.to_string(), inst));
            }
            "--all" => {
                let v = value()?;
                let first: Ipv4Addr = v.parse().map_err(|_| format!("--all: bad address {v:?}"))?;
                for (i, m) in emulator::all_models().into_iter().enumerate() {
                    let a = Ipv4Addr::from(u32::from(first) + i as u32);
                    bmcs.push((a, m, 0));
                }
            }
            s => return Err(format!("unknown argument {s}")),
        }
    }
    if bmcs.is_empty() {
        return Err("no BMCs: give --bmc ADDR=MODEL or --all FIRST_ADDR".into());
    }
    if let Some(a) = bmcs.iter().find(|(a, _, _)| !a.is_loopback()) {
        return Err(format!(
            "{} is not a loopback address; the emulator answers on 127.0.0.0/8 only",
            a.0
        ));
    }
    let user = std::env::var("EMULATOR_USERNAME").unwrap_or_else(|_| "root".into());
    let pass = std::env::var("EMULATOR_PASSWORD").unwrap_or_else(|_| "calvin".into());
    let emu = emulator::Emulator::start(port);
    if let Some(f) = &ca_out {
        std::fs::write(f, emu.ca_pem()).map_err(|e| format!("--ca-out {f}: {e}"))?;
    }
    for (addr, model, inst) in &bmcs {
        emu.add(*addr, model, *inst, &user, &pass);
        if !latency.is_zero() {
            emu.set_faults(
                *addr,
                emulator::Faults {
                    latency,
                    ..Default::default()
                },
            );
        }
        println!("https://{addr}:{} {model}#{inst}", emu.port);
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
