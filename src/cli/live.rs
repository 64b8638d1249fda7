//! The mount's catalog at run time: the tree built from the persistent catalog, and the live
//! refresh that keeps it current.
//!
//! - [`build_view`] reads the catalog, builds the tree keeping every name and inode handed
//!   out before, and writes back what it handed out to new items (one transaction). The
//!   built tree is then written as the catalog's tree snapshot (`cli::snapshot`), which
//!   the next warm start reads instead of building (~0.1 s instead of ~0.8 s at 100 000
//!   items).
//! - [`refresh_loop`] runs a sync every `--refresh-interval` and whenever the daemon gets
//!   SIGUSR1 (what `micloudfs refresh MOUNTPOINT` sends), rebuilds the tree, swaps it into
//!   the file system and tells the kernel what changed (`fs::invalidate`). An unreachable
//!   service is said once in the log; the mount goes on serving the catalog offline and
//!   tries again at the next interval. After each refresh the status file is rewritten
//!   (`status`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::snapshot;
use super::status::StatusWriter;
use crate::catalog::{Catalog, Stamp, Store, StoreError, Summary, SyncReport, Syncer};
use crate::fs::LiveView;
use crate::view::{View, ViewOptions};

/// A tree built from the catalog, with what the mount says of it and the catalog state it
/// shows.
struct Built {
    view: View,
    summary: Summary,
    stamp: Stamp,
}

/// Builds the tree from the catalog and records the names and inodes it handed out.
fn build_view(store: &Mutex<Store>, opts: &ViewOptions) -> Result<Built, StoreError> {
    let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
    let t0 = std::time::Instant::now();
    let catalog = Catalog::load(&store)?;
    let t1 = std::time::Instant::now();
    let view = View::of_catalog(&catalog, opts);
    let t2 = std::time::Instant::now();
    let changes = view.handed_changes(&catalog.handed, &catalog.dirs);
    if !changes.is_empty() {
        store.write(|tx| {
            for (i, h) in changes.files() {
                let item = &catalog.items[i];
                if item.kind == crate::model::MediaKind::Recording {
                    if let Some(h) = &h.album {
                        tx.set_recording_name(item.id.0, h)?;
                    }
                } else {
                    tx.set_item_names(item.id, &h)?;
                }
            }
            for (id, d) in &changes.dirs {
                tx.set_album_dir(*id, d)?;
            }
            Ok(())
        })?;
        tracing::debug!(
            files = changes.file_count(),
            dirs = changes.dirs.len(),
            "names and inodes handed out recorded in the catalog"
        );
    }
    tracing::info!(
        items = catalog.items.len(),
        load_ms = (t1 - t0).as_millis() as u64,
        build_ms = (t2 - t1).as_millis() as u64,
        record_ms = t2.elapsed().as_millis() as u64,
        "tree built from the catalog"
    );
    // Read under the same lock as the rows: nothing was written in between.
    let stamp = store.stamp()?;
    Ok(Built {
        summary: catalog.summary(),
        view,
        stamp,
    })
}

/// The tree to serve at the start of a mount: on a warm start the snapshot, when it is of
/// the catalog as it is now; else a build, whose snapshot is then written in the background
/// (off the mount's path).
pub(crate) fn initial_view(
    store: &Mutex<Store>,
    opts: &ViewOptions,
    snapshot_at: &std::path::Path,
    warm: bool,
) -> Result<(Arc<View>, Summary), StoreError> {
    if warm {
        let t0 = std::time::Instant::now();
        let stamp = store.lock().unwrap_or_else(|p| p.into_inner()).stamp()?;
        if let Some((view, summary)) = snapshot::load(snapshot_at, stamp, opts) {
            tracing::info!(
                nodes = view.node_count(),
                ms = t0.elapsed().as_millis() as u64,
                "tree read from its snapshot"
            );
            return Ok((Arc::new(view), summary));
        }
    }
    build_and_save(store, opts, snapshot_at)
}

/// Builds the tree ([`build_view`]) and writes its snapshot in the background.
fn build_and_save(
    store: &Mutex<Store>,
    opts: &ViewOptions,
    snapshot_at: &std::path::Path,
) -> Result<(Arc<View>, Summary), StoreError> {
    let built = build_view(store, opts)?;
    let view = Arc::new(built.view);
    save_in_background(snapshot_at, &view, &built.summary, built.stamp, opts);
    Ok((view, built.summary))
}

/// Snapshot writes still running: the daemon waits for them before it exits
/// ([`wait_for_snapshots`]), so that a mount unmounted at once still leaves its snapshot.
static WRITERS: Mutex<Vec<std::thread::JoinHandle<()>>> = Mutex::new(Vec::new());

/// Waits for the snapshot writes still running (~0.1 s at 100 000 items).
pub(crate) fn wait_for_snapshots() {
    let writers = std::mem::take(&mut *WRITERS.lock().unwrap_or_else(|p| p.into_inner()));
    for w in writers {
        let _ = w.join();
    }
}

/// Writes the snapshot of `view` on a thread of its own.
fn save_in_background(
    path: &std::path::Path,
    view: &Arc<View>,
    summary: &Summary,
    stamp: Stamp,
    opts: &ViewOptions,
) {
    let (path, view, summary, opts) = (
        path.to_path_buf(),
        Arc::clone(view),
        summary.clone(),
        opts.clone(),
    );
    let spawned = std::thread::Builder::new()
        .name("tree-snapshot".into())
        .spawn(move || snapshot::save_logged(&path, &view, &summary, stamp, &opts));
    match spawned {
        Ok(handle) => {
            let mut writers = WRITERS.lock().unwrap_or_else(|p| p.into_inner());
            writers.retain(|w| !w.is_finished());
            writers.push(handle);
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the thread that writes the tree snapshot")
        }
    }
}

/// One line about a sync, for the log and the root's `user.micloudfs.last_refresh`.
pub(crate) fn describe(report: &SyncReport) -> String {
    let mut line = format!(
        "ok: {} albums, {} items added or changed, {} removed ({} albums incremental, {} listed in full)",
        report.albums, report.upserted, report.removed, report.incremental, report.full_listings
    );
    if !report.failed.is_empty() {
        let ids: Vec<String> = report.failed.iter().map(|(id, _)| id.to_string()).collect();
        line.push_str(&format!(
            "; incomplete albums (listing failed): {}",
            ids.join(", ")
        ));
    }
    line
}

/// How [`refresh_loop`] runs.
pub(crate) struct RefreshPlan {
    pub opts: ViewOptions,
    pub interval: Duration,
    /// Refresh at once (a warm start), not only after the first interval.
    pub first_now: bool,
    /// Rewritten after every refresh.
    pub status: Arc<StatusWriter>,
    /// Where the tree snapshot goes after every rebuild.
    pub snapshot: std::path::PathBuf,
}

/// Refreshes the catalog forever: every `interval`, and at once on SIGUSR1.
pub(crate) async fn refresh_loop(
    syncer: Arc<Syncer>,
    store: Arc<Mutex<Store>>,
    live: Arc<LiveView>,
    notifier: fuser::Notifier,
    plan: RefreshPlan,
) {
    let RefreshPlan {
        opts,
        interval,
        first_now,
        status,
        snapshot,
    } = plan;
    let mut usr1 = match tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::user_defined1(),
    ) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGUSR1: `micloudfs refresh` will not work; the mount still refreshes every interval");
            None
        }
    };
    let mut offline_said = false;
    let mut first = first_now;
    loop {
        if !first {
            let tick = tokio::time::sleep(interval);
            match usr1.as_mut() {
                Some(sig) => {
                    tokio::select! {
                        _ = tick => {},
                        _ = sig.recv() => tracing::info!("refresh asked for (SIGUSR1)"),
                    }
                }
                None => tick.await,
            }
        }
        first = false;
        syncer.progress.requests.store(0, Ordering::Relaxed);
        let line = match syncer.sync().await {
            Ok(report) => {
                if offline_said {
                    tracing::info!("the service answers again; the catalog is refreshed");
                    offline_said = false;
                }
                let line = describe(&report);
                if report.changed || !report.failed.is_empty() {
                    match swap(&store, &live, &notifier, &opts, &snapshot).await {
                        Ok(n) => tracing::info!(invalidations = n, "{line}"),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot rebuild the tree after a refresh; the previous one is still served")
                        }
                    }
                } else {
                    tracing::info!("refresh: nothing changed");
                }
                line
            }
            Err(e) if e.is_unreachable() => {
                if !offline_said {
                    tracing::warn!(error = %e, "the service cannot be reached: serving the catalog offline (cached files read as usual); trying again every {}s", interval.as_secs());
                    offline_said = true;
                }
                format!("offline: {e}")
            }
            Err(e) => {
                tracing::error!(error = %e, "the refresh failed; the previous catalog is still served");
                format!("failed: {e}")
            }
        };
        // The status file first: `micloudfs refresh` returns once the count moves, and what
        // it says then must already be in the file.
        let (store2, status2, line2) = (store.clone(), status.clone(), line.clone());
        let _ = tokio::task::spawn_blocking(move || {
            let store = store2.lock().unwrap_or_else(|p| p.into_inner());
            status2.update(&store, "mounted", &line2);
        })
        .await;
        live.refreshed(line);
    }
}

/// Rebuilds the tree from the catalog, serves it, tells the kernel what changed, and writes
/// the new tree's snapshot.
async fn swap(
    store: &Arc<Mutex<Store>>,
    live: &Arc<LiveView>,
    notifier: &fuser::Notifier,
    opts: &ViewOptions,
    snapshot_at: &std::path::Path,
) -> Result<usize, StoreError> {
    let (store, opts, at) = (store.clone(), opts.clone(), snapshot_at.to_path_buf());
    let (new, _) = tokio::task::spawn_blocking(move || build_and_save(&store, &opts, &at))
        .await
        .unwrap_or_else(|e| Err(StoreError::from_join(e)))?;
    let old = live.replace(new.clone());
    let notifier = notifier.clone();
    let n = tokio::task::spawn_blocking(move || crate::fs::invalidate(&notifier, &old, &new))
        .await
        .unwrap_or(0);
    Ok(n)
}
