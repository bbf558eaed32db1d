//! Step-by-step logging for `-v`: `pipework: step NAME: what`. A plain value (Copy) that every
//! layer can take without depending on the executor.

use std::fmt::Display;

#[derive(Debug, Clone, Copy, Default)]
pub struct Log {
    pub verbose: bool,
}

impl Log {
    pub fn step(&self, name: &str, what: impl Display) {
        if self.verbose {
            eprintln!("pipework: step {name}: {what}");
        }
    }

    pub fn info(&self, what: impl Display) {
        if self.verbose {
            eprintln!("pipework: {what}");
        }
    }
}
