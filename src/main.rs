//! Thin binary: parse, run, print. Errors are printed by us (no `main() -> Result`, whose
//! Debug output would add noise), with the exit status the error defines.

use std::process::ExitCode;

use pipework::cli::{self, Invocation};

fn main() -> ExitCode {
    // Called by an external DHCP client as its script: configure the guest interface only.
    if let Ok(client) = std::env::var(pipework::addressing::dhcp::external::HOOK_ENV) {
        pipework::addressing::dhcp::external::hook(&client);
    }
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(pipework::addressing::dhcp::supervisor::SUBCOMMAND) {
        pipework::addressing::dhcp::supervisor::run();
    }
    let result = cli::parse(&argv).and_then(|inv| match inv {
        Invocation::Print(text) => {
            print!("{text}");
            Ok(0)
        }
        Invocation::Run(cmd, opts) => pipework::run(&cmd, opts).map(|out| {
            if let Some(s) = out.stdout {
                println!("{s}");
            }
            out.status
        }),
    });
    match result {
        Ok(status) => ExitCode::from(status.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("pipework: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
