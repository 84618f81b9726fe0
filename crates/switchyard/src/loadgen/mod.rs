//! `switchyard loadgen`: the project's own load generators.

mod alloc_rate;
mod client;
mod procstat;
#[cfg(feature = "loadgen-sfu")]
mod sfu;
mod turn;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

const USAGE: &str =
    "Usage: switchyard loadgen turn [options]   (see `switchyard loadgen turn --help`)
       switchyard loadgen sfu [options]    (see `switchyard loadgen sfu --help`)";

pub(crate) fn main(args: Vec<OsString>) -> ExitCode {
    let Some(kind) = args.first().map(|a| a.to_string_lossy().into_owned()) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match kind.as_str() {
        "turn" => {
            let parsed = match turn::Args::try_parse_from(&args) {
                Ok(a) => a,
                Err(e) => e.exit(),
            };
            match turn::run(parsed) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("loadgen: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        #[cfg(feature = "loadgen-sfu")]
        "sfu" => {
            let parsed = match sfu::Args::try_parse_from(&args) {
                Ok(a) => a,
                Err(e) => e.exit(),
            };
            match sfu::run(parsed) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("loadgen: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        #[cfg(not(feature = "livekit"))]
        "sfu" => {
            eprintln!("loadgen sfu: this build has no LiveKit support (feature `livekit`)");
            ExitCode::from(2)
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
