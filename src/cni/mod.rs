//! pipework as a CNI plugin (spec 1.1, containernetworking/cni SPEC.md): the same binary, run
//! by a runtime with `CNI_COMMAND` set and the network configuration on stdin. A front end
//! like the CLI: it parses the environment and the configuration into engine requests, and
//! renders the engine's reports and typed errors as CNI results and error objects.
//!
//! `plugin` runs the commands over the engine; the other modules are its pure parts (the
//! environment, the configuration, versions, results, errors) and the IPAM delegation.

pub mod config;
pub mod env;
pub mod error;
pub mod ipam;
pub mod plugin;
pub mod result;
pub mod version;

/// Set by every CNI runtime: the binary acts as a plugin when it is present.
pub const COMMAND_ENV: &str = "CNI_COMMAND";

/// Whether this process was started as a CNI plugin.
pub fn invoked_as_plugin() -> bool {
    std::env::var_os(COMMAND_ENV).is_some()
}
