//! Progress on a terminal: a spinner line with counters that long-running
//! commands bump from any task. On a pipe, with `-o json|yaml`, or when
//! disabled, it draws nothing and costs a few atomic adds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Counters shown by the progress line.
#[derive(Debug, Default)]
pub struct Counters {
    /// Units of listing work (resource types, or type × namespace) finished.
    pub lists_done: AtomicU64,
    /// Units of listing work planned.
    pub lists_total: AtomicU64,
    /// Items written.
    pub items: AtomicU64,
    /// Bytes uploaded.
    pub bytes: AtomicU64,
}

/// A progress line; clones share it.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    counters: Arc<Counters>,
}

impl Progress {
    /// A progress line drawn on stderr when `enabled` and stderr is a terminal.
    pub fn new(enabled: bool) -> Self {
        let bar = (enabled && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            counters: Arc::new(Counters::default()),
        }
    }

    /// A progress line that never draws.
    pub fn hidden() -> Self {
        Progress::new(false)
    }

    /// The shared counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Redraw the message from the counters (call it now and then).
    pub fn refresh(&self, stage: &str) {
        if let Some(bar) = &self.bar {
            let c = &self.counters;
            bar.set_message(format!(
                "{stage}: resources listed {}/{}, items written {}, uploaded {}",
                c.lists_done.load(Ordering::Relaxed),
                c.lists_total.load(Ordering::Relaxed),
                c.items.load(Ordering::Relaxed),
                indicatif::HumanBytes(c.bytes.load(Ordering::Relaxed)),
            ));
        }
    }

    /// Show a plain message (a stage without counters yet).
    pub fn message(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.to_owned());
        }
    }

    /// Is anything drawn?
    pub fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    /// Remove the line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Print a line above the progress line (or to stderr when hidden).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}
