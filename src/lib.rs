//! pipework: software-defined networking for Linux containers.
//!
//! Layers (docs/architecture.md has the picture and the path of one attach):
//! front ends (`cli`, `watch`) → `engine` (a session running typed `request`s, returning typed
//! `report`s) → `driver` (one file per host-interface kind: plan, apply, undo, teardown, check)
//! and `addressing` (the guest side, the same for every kind) → `apply` (the executor and the
//! undo replay) → `store` (records and their write-ahead undo journal) → `netlink` (messages,
//! the socket client, the recording fake) and `ns` (namespace handles).

pub mod addressing;
pub mod announce;
pub mod apply;
pub mod cli;
pub mod cni;
pub mod doctor;
pub mod driver;
pub mod driver_api;
pub mod engine;
pub mod env;
pub mod error;
pub mod exec;
pub mod firewall;
pub mod grammar;
pub mod guest;
pub mod guestfs;
pub mod lab;
pub mod links;
pub mod list;
pub mod list_format;
pub mod log;
pub mod mac;
pub mod naming;
pub mod netavark;
pub mod netlink;
pub mod ns;
pub mod plan;
pub mod privilege;
pub mod process;
pub mod progress;
pub mod report;
pub mod request;
pub mod store;
pub mod testhook;
pub mod topology;
pub mod wait;
pub mod watch;
