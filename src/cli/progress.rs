//! Progress bars (indicatif) for long runs and studies: walker-steps done, steps/s and ETA on
//! stderr. Hidden with `--quiet`/`--json` and whenever stderr is not a terminal (batch jobs, pipes),
//! so logs and captured output stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// A step counter that draws itself only when someone is watching.
pub struct StepProgress {
    bar: Option<ProgressBar>,
}

impl StepProgress {
    /// A bar on stderr, or nothing if `quiet` or stderr is not a terminal.
    pub fn new(quiet: bool) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return Self { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} walker-steps  {per_sec}  ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        bar.set_style(style);
        Self { bar: Some(bar) }
    }

    /// Sets the number of steps still to run.
    pub fn set_total(&self, steps: u64) {
        if let Some(b) = &self.bar {
            b.set_length(steps);
            b.reset_eta();
        }
    }

    /// Counts `steps` more as done.
    pub fn advance(&self, steps: u64) {
        if let Some(b) = &self.bar {
            b.inc(steps);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
