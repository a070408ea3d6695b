//! `bmc-pool-report`: asks a running Kea for `bmc-pool-report` (through its
//! control socket or kea-ctrl-agent) and prints it as text, JSON or CSV.
//!
//! Exit status: 0 the report was printed (and no subnet is at or above
//! `--fail-at`), 1 a subnet is at or above `--fail-at`, 2 Kea could not be
//! asked or refused the command, 64 bad usage. Cron and monitoring can use
//! the status without parsing the output.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

use dhcp_bmc_discovery::pool_report::{self, Level, Report};
use serde_json::{json, Value};

/// Debian's kea-dhcp4.conf puts Kea's control socket here.
const DEFAULT_SOCKET: &str = "/run/kea/kea4-ctrl-socket";
const TIMEOUT: Duration = Duration::from_secs(30);

const USAGE: &str = "\
usage: bmc-pool-report [--socket PATH | --url URL] [--format text|json|csv]
                       [--subnet-id ID] [--all] [--fail-at warning|high|critical]

Utilisation of the address pools of the BMC subnets, from the running Kea's
configuration and lease database (the hook's bmc-pool-report command).

  --socket PATH   Kea's control socket (default /run/kea/kea4-ctrl-socket)
  --url URL       ask kea-ctrl-agent instead, e.g. http://127.0.0.1:8000/
  --format F      text (default), json, or csv (one row per pool, then one
                  per subnet with pool 'all')
  --subnet-id ID  only this subnet (opted in or not)
  --all           every subnet, not only those opted in to BMC discovery
  --fail-at L     exit 1 if a subnet is at level L or above

Exit status: 0 printed, 1 at or above --fail-at, 2 Kea error, 64 usage.";

struct Options {
    socket: String,
    url: Option<String>,
    format: String,
    subnet_id: Option<u64>,
    all: bool,
    fail_at: Option<Level>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        socket: DEFAULT_SOCKET.into(),
        url: None,
        format: "text".into(),
        subnet_id: None,
        all: false,
        fail_at: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--socket" => o.socket = value("--socket")?,
            "--url" => o.url = Some(value("--url")?),
            "--format" => {
                o.format = value("--format")?;
                if !["text", "json", "csv"].contains(&o.format.as_str()) {
                    return Err(format!(
                        "--format must be text, json or csv, got '{}'",
                        o.format
                    ));
                }
            }
            "--subnet-id" => {
                let v = value("--subnet-id")?;
                o.subnet_id = Some(
                    v.parse()
                        .map_err(|_| format!("--subnet-id must be a subnet id, got '{v}'"))?,
                );
            }
            "--all" => o.all = true,
            "--fail-at" => {
                let v = value("--fail-at")?;
                o.fail_at = match Level::parse(&v) {
                    Some(l) if l != Level::Ok => Some(l),
                    _ => {
                        return Err(format!(
                            "--fail-at must be warning, high or critical, got '{v}'"
                        ))
                    }
                };
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(o)
}

/// Kea's answer to `request` through its control socket (Kea answers and
/// closes the connection).
fn over_socket(path: &str, request: &Value) -> Result<Value, String> {
    let fail = |e: std::io::Error| format!("Kea's control socket {path}: {e}");
    let mut stream = UnixStream::connect(path).map_err(|e| {
        format!(
            "cannot connect to Kea's control socket {path}: {e} (is kea-dhcp4 running with \
             this \"control-socket\"? --socket names another)"
        )
    })?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
    stream
        .write_all(request.to_string().as_bytes())
        .map_err(fail)?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).map_err(fail)?;
    serde_json::from_slice(&buf).map_err(|e| format!("Kea's answer is not JSON: {e}"))
}

/// Kea's answer through kea-ctrl-agent, which answers a list (one entry
/// per service asked).
fn over_agent(url: &str, request: &Value) -> Result<Value, String> {
    let mut request = request.clone();
    request["service"] = json!(["dhcp4"]);
    let body = ureq::post(url)
        .timeout(TIMEOUT)
        .set("Content-Type", "application/json")
        .send_string(&request.to_string())
        .map_err(|e| format!("kea-ctrl-agent at {url}: {e}"))?
        .into_string()
        .map_err(|e| format!("kea-ctrl-agent at {url}: {e}"))?;
    let answer: Value = serde_json::from_str(&body)
        .map_err(|e| format!("kea-ctrl-agent's answer is not JSON: {e}"))?;
    match answer {
        Value::Array(mut list) if !list.is_empty() => Ok(list.swap_remove(0)),
        other => Ok(other),
    }
}

fn run(o: &Options) -> Result<(Report, Value), String> {
    let mut arguments = json!({});
    if let Some(id) = o.subnet_id {
        arguments["subnet-id"] = json!(id);
    }
    if o.all {
        arguments["all"] = json!(true);
    }
    let request = json!({"command": "bmc-pool-report", "arguments": arguments});
    let answer = match &o.url {
        Some(url) => over_agent(url, &request)?,
        None => over_socket(&o.socket, &request)?,
    };
    let result = answer["result"].as_i64().unwrap_or(1);
    let text = answer["text"].as_str().unwrap_or("");
    // 3 = empty: no subnet opted in; still a report, with nothing in it.
    if result != 0 && result != 3 {
        return Err(format!(
            "Kea answered bmc-pool-report with error {result}: {text}"
        ));
    }
    let arguments = answer["arguments"].clone();
    let report: Report = serde_json::from_value(arguments.clone())
        .map_err(|e| format!("bmc-pool-report answered something this tool does not read: {e}"))?;
    Ok((report, arguments))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bmc-pool-report: {e}\n\n{USAGE}");
            return ExitCode::from(64);
        }
    };
    let (report, raw) = match run(&options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bmc-pool-report: {e}");
            return ExitCode::from(2);
        }
    };
    let out = match options.format.as_str() {
        "json" => serde_json::to_string_pretty(&raw).unwrap_or_default() + "\n",
        "csv" => pool_report::csv(&report),
        _ => pool_report::text(&report),
    };
    print!("{out}");
    match options.fail_at {
        Some(level) if report.worst() >= level => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse_and_mistakes_say_what_is_wrong() {
        let o = parse(&args(&[
            "--format",
            "csv",
            "--subnet-id",
            "7",
            "--fail-at",
            "high",
        ]))
        .unwrap();
        assert_eq!(o.format, "csv");
        assert_eq!(o.subnet_id, Some(7));
        assert_eq!(o.fail_at, Some(Level::High));
        assert_eq!(o.socket, DEFAULT_SOCKET);
        let err = |a: &[&str]| parse(&args(a)).err().unwrap();
        assert_eq!(
            err(&["--format", "xml"]),
            "--format must be text, json or csv, got 'xml'"
        );
        assert_eq!(
            err(&["--fail-at", "ok"]),
            "--fail-at must be warning, high or critical, got 'ok'"
        );
        assert_eq!(err(&["--subnet-id"]), "--subnet-id needs a value");
        assert_eq!(
            err(&["--subnet-id", "x"]),
            "--subnet-id must be a subnet id, got 'x'"
        );
        assert_eq!(err(&["--bogus"]), "unknown argument '--bogus'");
        assert_eq!(err(&["--help"]), "");
    }

    #[test]
    fn a_missing_socket_names_the_path_and_the_fix() {
        let e = over_socket("/nonexistent/kea.sock", &json!({})).unwrap_err();
        assert!(
            e.starts_with("cannot connect to Kea's control socket /nonexistent/kea.sock:"),
            "{e}"
        );
        assert!(e.contains("--socket"), "{e}");
    }
}
