//! `switchyard`: one binary for the real-time media servers of a self-hosted Matrix stack.
//!
//! `switchyard turn [coturn flags]` runs the TURN/STUN relay. Called as `turnserver` (a
//! symlink or a renamed copy), the binary behaves as `switchyard turn`, so it drops into
//! containers and units that start coturn.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

#[cfg(feature = "livekit")]
mod livekit;
mod loadgen;
mod logging;
mod turn;

const USAGE: &str = "\
switchyard — TURN/STUN relay and SFU for self-hosted Matrix

Usage:
  switchyard turn [-c FILE] [coturn options...]   TURN/STUN relay (coturn drop-in)
  switchyard turn --check-config [-c FILE] ...    print the effective relay config and exit
  switchyard livekit [--dev] [--keys \"k: s\"] ...   LiveKit-compatible SFU (livekit-server drop-in)
  switchyard loadgen turn --secret S [options]    load generator (relay, alloc-rate, idle, flood)
  switchyard loadgen sfu [options]                LiveKit participants against an SFU (fwd pps, loss, join)
  switchyard --version
  switchyard --help

Called as `turnserver`, the binary runs `switchyard turn`; as `livekit-server`, `switchyard livekit`.";

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if argv0 == "turnserver" {
        args.remove(0);
        // The coturn image's entrypoint runs a first argument that is not an option as the
        // program, so compose files say `command: turnserver -c FILE`; in our image the
        // binary is the entrypoint and receives that word as its first argument.
        if args.first().is_some_and(|a| a == "turnserver") {
            args.remove(0);
        }
        return turn::main(args);
    }
    if argv0 == "livekit-server" {
        args.remove(0);
        return livekit_main(args);
    }
    args.remove(0);
    let Some(command) = args.first().map(|a| a.to_string_lossy().into_owned()) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match command.as_str() {
        "turn" => turn::main(args.split_off(1)),
        "livekit" => livekit_main(args.split_off(1)),
        "loadgen" => loadgen::main(args.split_off(1)),
        "--version" | "-V" | "version" => {
            println!("switchyard {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        "--help" | "-h" | "help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("switchyard: unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(feature = "livekit")]
fn livekit_main(args: Vec<OsString>) -> ExitCode {
    livekit::main(args)
}

/// A TURN-only build (the `switchyard-turn` image) says so instead of failing obscurely.
#[cfg(not(feature = "livekit"))]
fn livekit_main(_args: Vec<OsString>) -> ExitCode {
    eprintln!("switchyard: this build has no LiveKit SFU (built without the `livekit` feature)");
    ExitCode::from(2)
}
