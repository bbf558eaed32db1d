//! Progress of long work (a lab's apply, a DHCP wait, a gc of many attachments), for a front
//! end to show. Library code opens a `Task` and advances it; what is shown, if anything, is the
//! front end's choice: the CLI installs a sink only when stdout is a terminal and `--json` is
//! off, and nothing else installs one, so the CNI plugin, netavark and watch stay silent.
//! Process-wide like tracing's dispatcher, so that no layer has to thread a handle through.

use std::sync::{Arc, OnceLock};

/// What a front end does with progress.
pub trait Sink: Send + Sync {
    /// A task starts: `total` steps, or None for a wait of unknown length.
    fn begin(&self, id: u64, what: &str, total: Option<u64>);
    fn advance(&self, id: u64, done: u64);
    fn end(&self, id: u64);
}

static SINK: OnceLock<Arc<dyn Sink>> = OnceLock::new();
static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Installs the process's sink (once; later calls are ignored).
pub fn set_sink(s: Arc<dyn Sink>) {
    let _ = SINK.set(s);
}

/// One piece of long work; ended when dropped (also on an error's early return).
pub struct Task {
    id: u64,
    done: u64,
    sink: Option<Arc<dyn Sink>>,
}

impl Task {
    pub fn start(what: &str, total: Option<u64>) -> Task {
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sink = SINK.get().cloned();
        if let Some(s) = &sink {
            s.begin(id, what, total);
        }
        Task { id, done: 0, sink }
    }

    pub fn inc(&mut self, n: u64) {
        self.done += n;
        if let Some(s) = &self.sink {
            s.advance(self.id, self.done);
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(s) = &self.sink {
            s.end(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Record(Mutex<Vec<String>>);

    impl Sink for Record {
        fn begin(&self, id: u64, what: &str, total: Option<u64>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{id} begin {what} {total:?}"));
        }
        fn advance(&self, id: u64, done: u64) {
            self.0.lock().unwrap().push(format!("{id} at {done}"));
        }
        fn end(&self, id: u64) {
            self.0.lock().unwrap().push(format!("{id} end"));
        }
    }

    #[test]
    fn a_task_reports_to_the_sink_and_ends_when_dropped() {
        let rec = Arc::new(Record::default());
        set_sink(rec.clone());
        let id = {
            let mut t = Task::start("lab x", Some(3));
            t.inc(1);
            t.inc(2);
            t.id
        };
        let got = rec.0.lock().unwrap().clone();
        assert_eq!(
            got,
            [
                format!("{id} begin lab x Some(3)"),
                format!("{id} at 1"),
                format!("{id} at 3"),
                format!("{id} end")
            ]
        );
    }
}
