//! Thin binary: the hidden entry points pipework's own child processes use, then the CLI.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Called by an external DHCP client as its script: configure the guest interface only.
    if let Ok(client) = std::env::var(pipework::addressing::dhcp::external::HOOK_ENV) {
        pipework::addressing::dhcp::external::hook(&client);
    }
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(
            pipework::addressing::dhcp::supervisor::SUBCOMMAND,
        ))
    {
        pipework::addressing::dhcp::supervisor::run();
    }
    // Run by netavark (Podman 5) as `pipework-netavark info|create|setup|teardown`.
    let mut argv = std::env::args_os();
    if pipework::netavark::invoked_as_plugin(argv.next().as_deref()) {
        let args: Vec<String> = argv.map(|a| a.to_string_lossy().into_owned()).collect();
        let out = pipework::netavark::main(&args, &mut std::io::stdin().lock());
        if !out.stdout.is_empty() {
            println!("{}", out.stdout);
        }
        return ExitCode::from(out.code.clamp(0, 255) as u8);
    }
    // Run by a CNI runtime (CNI_COMMAND set): the plugin, whatever the arguments.
    if pipework::cni::invoked_as_plugin() {
        let out =
            pipework::cni::plugin::main(&|k| std::env::var(k).ok(), &mut std::io::stdin().lock());
        if !out.stdout.is_empty() {
            println!("{}", out.stdout);
        }
        return ExitCode::from(out.code.clamp(0, 255) as u8);
    }
    let status = pipework::cli::main(std::env::args_os());
    ExitCode::from(status.clamp(0, 255) as u8)
}
