//! The progress bar `mount` draws while the daemon lists the gallery for the first time.
//!
//! The daemon writes `progress LISTED TOTAL REQUESTS` lines on the readiness pipe every
//! 200 ms during a first sync (`ready`); on a terminal the parent draws them as a bar (items
//! listed of the counts the album list announces, rate, time left; indicatif), elsewhere
//! nothing. Ctrl-C while waiting is `signals`' business: it is passed on to the daemon, which
//! abandons the sync (what was listed is committed; the next `mount` resumes) and exits, and
//! the parent waits for it, so nothing is left mounted or running.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar on stderr when it is a terminal, else a hidden one.
pub(crate) fn bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "listing the gallery {wide_bar} {human_pos}/{human_len} items, {per_sec}, {eta} left",
    ) {
        bar.set_style(style);
    }
    bar
}
