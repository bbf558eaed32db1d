//! The command-line front end: the grammar (`grammar`) into a typed command, one engine
//! session to run it, and the rendering of its report.

pub mod docs;
mod render;
mod run;
pub mod ui;

pub use crate::grammar::{parse, parse_attach_spec, Invocation, Options, USAGE};
pub use run::{main, parse_argv};
