//! Declarative topologies (issue 11, work in progress): a lab file — guests, bridges, attach
//! lines in the CLI's own grammar, point-to-point links, routes — planned against the kernel,
//! applied all-or-nothing through the engine, destroyed by its tag. Here so far: the file's
//! model, parse and checks (`file`).

pub mod file;
pub mod graph;
