//! The running mount: logging, the tokio runtime, the catalog listing, the FUSE session,
//! and a clean unmount on SIGINT/SIGTERM.
//!
//! Order of start: logging (a writer that never fails: `logwriter`), the runtime, the signal
//! handlers (`signals`: a stop during the listing abandons it; SIGHUP/SIGUSR2 are
//! ignored from here on), the listing, then the mount point is claimed and checked again
//! (`mountpoint::claim`) and the kernel mount made. Only then is the parent told.

use std::path::PathBuf;
use std::sync::Arc;

use fuser::{Config, MountOption, Session};

use super::live;
use super::logwriter::NeverFail;
use super::mountpoint;
use super::mounttable::FS_NAME;
use super::ready::report;
use super::ready::report_progress;
use super::signals::{Lifecycle, INTERRUPTED};
use super::status::StatusWriter;
use crate::account::{Account, AccountStore, StoredCredentials};
use crate::catalog::{catalog_path, Store, SyncOptions, Syncer};
use crate::cloud::{ClientConfig, CredentialSource, Credentials, GalleryApi, HttpGalleryClient};
use crate::content::{ContentCache, ContentConfig, MinFree, DEFAULT_MEMORY_BUDGET};
use crate::fs::{GalleryFs, LiveView};
use crate::view::{DateZone, ViewOptions};

pub(crate) enum Source {
    Account {
        account: Account,
        api_base: String,
        store: AccountStore,
    },
    /// The demo gallery, served by an emulator inside this process.
    Demo,
}

pub(crate) struct DaemonPlan {
    pub mountpoint: PathBuf,
    pub cache_dir: PathBuf,
    pub log_path: PathBuf,
    pub source: Source,
    pub zone: DateZone,
    pub include_private: bool,
    pub max_connections: usize,
    pub max_cache_bytes: u64,
    pub min_free: MinFree,
    pub io_timeout: std::time::Duration,
    pub token_refresh: std::time::Duration,
    pub foreground: bool,
    /// Mount on a folder that has files in it (they are hidden while mounted).
    pub allow_non_empty: bool,
    pub verbose: bool,
    /// Serve the catalog as it is, without asking the service.
    pub offline: bool,
    pub refresh_interval: std::time::Duration,
}

impl DaemonPlan {
    /// The account's catalog file.
    fn catalog_path(&self) -> PathBuf {
        let name = match &self.source {
            Source::Account { account, .. } => account.name.as_str(),
            Source::Demo => "demo",
        };
        catalog_path(&self.cache_dir, name)
    }
}

/// Runs the mount until it is unmounted. `pipe` is the parent's, when daemonized.
pub(crate) fn run(plan: DaemonPlan, pipe: Option<std::fs::File>) -> Result<(), String> {
    init_logging(plan.verbose);
    match start(&plan, pipe.as_ref()) {
        Ok((session, _rt, _sim, summary, status)) => {
            report(pipe, Ok(&summary));
            tracing::info!(pid = std::process::id(), "{summary}");
            let result = session.run();
            live::wait_for_snapshots();
            status.unmounted();
            tracing::info!(mountpoint = %plan.mountpoint.display(), "unmounted");
            result.map_err(|e| format!("the FUSE session ended with an error: {e}"))
        }
        Err(e) => {
            tracing::error!("{e}");
            report(pipe, Err(&e));
            Err(e)
        }
    }
}

type Started = (
    Session<GalleryFs>,
    tokio::runtime::Runtime,
    Option<Demo>,
    String,
    Arc<StatusWriter>,
);

/// The emulator serving `mount --demo`, alive as long as the mount.
#[cfg(feature = "demo")]
type Demo = micloud_sim::SimHandle;
#[cfg(not(feature = "demo"))]
type Demo = std::convert::Infallible;

/// What `mount --demo` says in a build without the `demo` feature.
pub(crate) const NO_DEMO: &str = "this micloudfs was built without the demo gallery (cargo \
     feature `demo`); rebuild it with default features, or mount your own account";

/// Starts the demo gallery on a free loopback port: its base URL and the credentials of its
/// default account.
#[cfg(feature = "demo")]
fn start_demo(rt: &tokio::runtime::Runtime) -> Result<(String, Credentials, Demo), String> {
    use micloud_sim as sim;
    let handle = rt
        .block_on(sim::start(
            sim::SimConfig::demo(),
            ([127, 0, 0, 1], 0).into(),
        ))
        .map_err(|e| format!("cannot start the demo gallery: {e}"))?;
    let creds = Credentials::pass_token(sim::DEFAULT_USER_ID, sim::DEFAULT_PASS_TOKEN);
    Ok((handle.base_url(), creds, handle))
}

#[cfg(not(feature = "demo"))]
fn start_demo(_: &tokio::runtime::Runtime) -> Result<(String, Credentials, Demo), String> {
    Err(NO_DEMO.to_string())
}

fn start(plan: &DaemonPlan, pipe: Option<&std::fs::File>) -> Result<Started, String> {
    // One async worker: it carries every socket, FUSE reply and job hand-off, which is
    // light (the SHA-1, the disk and every other step that may block run on the blocking
    // pool). More workers only wake each other: each chunk a socket gives wakes an idle
    // worker to look for work. Measured on a cold `cp -r` of the bench album, 8 alternating
    // pairs: daemon CPU 5% lower with 1 worker than with 4, same copy time; 2 gave the same
    // as 4. One worker still moves several hundred MB/s, far above a link to the service.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("micloudfs-io")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
    let life = Lifecycle::install(&rt)?;

    let (api_base, credentials, demo, source) = match &plan.source {
        Source::Account {
            account,
            api_base,
            store,
        } => {
            // A dead session re-reads this account's file: a new login revives the mount.
            let source: Arc<dyn CredentialSource> =
                Arc::new(StoredCredentials::new(store.clone(), &account.name));
            (api_base.clone(), account.credentials()?, None, Some(source))
        }
        Source::Demo => {
            let (base, creds, handle) = start_demo(&rt)?;
            (base, creds, Some(handle), None)
        }
    };

    let http = Arc::new(
        HttpGalleryClient::new(ClientConfig {
            request_timeout: plan.io_timeout,
            token_refresh: plan.token_refresh,
            source,
            ..ClientConfig::new(&api_base, credentials)
        })
        .map_err(|e| e.to_string())?,
    );
    // A pasted cookie must be renewed even while nobody reads.
    rt.spawn(http.clone().keep_cookie_alive());
    let client: Arc<dyn GalleryApi> = http;
    let store = Store::open(&plan.catalog_path()).map_err(|e| e.to_string())?;
    let warm = store
        .meta("first_sync_done")
        .map_err(|e| e.to_string())?
        .is_some();
    let store = Arc::new(std::sync::Mutex::new(store));
    let syncer = Arc::new(Syncer::new(
        client.clone(),
        store.clone(),
        SyncOptions {
            include_private: plan.include_private,
            ..SyncOptions::default()
        },
    ));
    let mut first_sync_line = None;
    if !warm {
        if plan.offline {
            return Err(format!(
                "--offline needs a catalog, and {} has none for this account yet: mount once with the network to list the gallery",
                plan.cache_dir.display()
            ));
        }
        tracing::info!(%api_base, "listing the gallery (first sync; an interrupted one resumes)");
        let progress = syncer.progress.clone();
        let ticker = pipe.and_then(|p| p.try_clone().ok()).map(|p| {
            rt.spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    report_progress(&p, &progress);
                }
            })
        });
        // Ctrl-C or SIGTERM during the first sync abandons it (what was listed is
        // committed; the next mount resumes).
        let synced = rt.block_on(async {
            tokio::select! {
                synced = syncer.sync() => Ok(synced),
                _ = life.stop_requested() => Err(INTERRUPTED.to_string()),
            }
        })?;
        if let Some(t) = ticker {
            t.abort();
        }
        let report = synced.map_err(|e| format!("cannot list the gallery: {e}"))?;
        let done = chrono::Utc::now().timestamp_millis().to_string();
        store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_meta("first_sync_done", &done)
            .map_err(|e| e.to_string())?;
        first_sync_line = Some(live::describe(&report));
    }
    let view_opts = ViewOptions {
        zone: plan.zone.clone(),
        include_private: plan.include_private,
    };
    let snapshot_at = crate::catalog::snapshot_path(&plan.catalog_path());
    super::snapshot::remove_leftovers(&snapshot_at);
    let (view, summary) =
        live::initial_view(&store, &view_opts, &snapshot_at, warm).map_err(|e| e.to_string())?;
    let live_view = LiveView::new(view);
    let status = Arc::new(StatusWriter {
        cache_dir: plan.cache_dir.clone(),
        mountpoint: plan.mountpoint.clone(),
    });
    let _ = live_view.status_file.set(status.path());
    let first_result = match (&first_sync_line, plan.offline) {
        (Some(line), _) => line.clone(),
        (None, true) => "offline (--offline): served from the catalog".to_string(),
        (None, false) => "served from the catalog; a refresh runs in the background".to_string(),
    };
    if let Some(line) = first_sync_line {
        live_view.refreshed(line);
    }
    let content = ContentCache::open(
        &ContentConfig {
            cache_dir: plan.cache_dir.clone(),
            max_connections: plan.max_connections,
            max_bytes: plan.max_cache_bytes,
            min_free: plan.min_free,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            io_timeout: plan.io_timeout,
            stream_above: crate::content::STREAM_ABOVE,
        },
        client,
    )
    .map_err(|e| e.to_string())?;
    let fs = GalleryFs::new(live_view.clone(), content, rt.handle().clone());
    let core = fs.core();

    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        // `unmount` knows its own mounts by these (see `mounttable`).
        MountOption::FSName(FS_NAME.into()),
        MountOption::Subtype(FS_NAME.into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoAtime,
    ];
    config.n_threads = Some(2);
    // The listing may have taken minutes: check the mount point again, and hold it until
    // the kernel mount is made, so that of two racing mounts only one mounts.
    let claim = mountpoint::claim(&plan.mountpoint, plan.allow_non_empty)?;
    life.check()?;
    let mut session = Session::new(fs, &plan.mountpoint, &config).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (is fuse3 installed? apt-get install fuse3)"
        } else {
            ""
        };
        format!("cannot mount on {}: {e}{hint}", plan.mountpoint.display())
    })?;

    GalleryFs::install_notifier(&core, session.notifier());
    raise_readahead(&plan.mountpoint);
    drop(claim);

    // The status file, then (unless --offline) the live refresh: at once after a warm start
    // (in the background: the tree is served from the catalog meanwhile), then every
    // interval and on SIGUSR1. One task, so the first status is written before any refresh
    // rewrites it; off the mount's critical path (summing the catalog and the cache takes
    // ~100 ms at 100 000 items).
    let refresh = (!plan.offline).then(|| {
        live::refresh_loop(
            syncer,
            store.clone(),
            live_view,
            session.notifier(),
            live::RefreshPlan {
                opts: view_opts,
                interval: plan.refresh_interval,
                first_now: warm,
                status: status.clone(),
                snapshot: snapshot_at,
            },
        )
    });
    let writer = status.clone();
    rt.spawn(async move {
        let _ = tokio::task::spawn_blocking(move || {
            let store = store.lock().unwrap_or_else(|p| p.into_inner());
            writer.update(&store, "mounted", &first_result);
        })
        .await;
        if let Some(refresh) = refresh {
            refresh.await;
        }
    });

    // From here SIGINT/SIGTERM unmount; the session loop then returns and the process exits.
    // A stop that came during the kernel mount drops the session, which unmounts.
    life.go_live(session.unmount_callable())?;

    let gib = summary.total_size as f64 / (1u64 << 30) as f64;
    let what = if demo.is_some() {
        "the demo gallery"
    } else {
        "the gallery"
    };
    let log = if plan.foreground {
        String::new()
    } else {
        format!("; log: {}", plan.log_path.display())
    };
    let how = match (warm, plan.offline) {
        (_, true) => "; offline, from the catalog",
        (true, false) => "; from the catalog, refreshing in the background",
        (false, false) => "",
    };
    let incomplete = if summary.incomplete == 0 {
        String::new()
    } else {
        format!(
            "; {} album(s) incomplete (see micloudfs stats)",
            summary.incomplete
        )
    };
    let summary = format!(
        "mounted {what} at {}: {} items in {} albums, {gib:.2} GiB{how}{incomplete}{log}",
        plan.mountpoint.display(),
        summary.items,
        summary.albums,
    );
    Ok((session, rt, demo, summary, status))
}

/// Raises the mount's readahead to `fs::READAHEAD_KB` (root only; others keep the kernel's
/// 128 KiB, which works, in smaller requests). The mount's device comes from
/// `/proc/self/mountinfo`: a `stat` of the mount point would wait for the session loop,
/// which is not running yet.
fn raise_readahead(mountpoint: &std::path::Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let want = mountpoint.to_string_lossy();
    let unescape = |s: &str| {
        s.replace("\\040", " ")
            .replace("\\011", "\t")
            .replace("\\012", "\n")
            .replace("\\134", "\\")
    };
    // The last line for the mount point is the mount on top.
    let Some(dev) = info.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.len() > 4 && unescape(f[4]) == want).then(|| f[2].to_string())
    }) else {
        return;
    };
    let path = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    match std::fs::write(&path, crate::fs::READAHEAD_KB.to_string()) {
        Ok(()) => tracing::debug!(%path, kb = crate::fs::READAHEAD_KB, "readahead raised"),
        Err(e) => tracing::debug!(%path, error = %e, "readahead left as the kernel set it"),
    }
}

fn init_logging(verbose: bool) {
    let default = if verbose {
        "micloudfs=debug,info"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MICLOUDFS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // A log that cannot be written drops lines; it never stops the daemon.
        .with_writer(NeverFail::new(std::io::stderr()))
        .log_internal_errors(false)
        .with_ansi(false)
        .try_init();
}
