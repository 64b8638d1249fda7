//! Signals around a mount: what stops it, what never does.
//!
//! - **SIGINT/SIGTERM to the daemon** (Ctrl-C on a `-f` mount, `kill`): before the tree is
//!   live, the listing is abandoned and nothing gets mounted (a mount that the kernel made in
//!   the same instant is taken down again before anyone is told it exists); once it is live,
//!   the session is unmounted cleanly and the process exits. [`Lifecycle`] holds that state.
//! - **SIGINT/SIGTERM to `mount`** (the waiting parent, not `-f`): the parent passes the
//!   signal to the daemon it forked and waits for it to exit, so Ctrl-C on `mount` during a
//!   long first listing leaves neither a mount nor a process. The parent blocks these signals
//!   across the fork and installs its forwarding handler before unblocking them, so no
//!   signal is lost in between, and the child never runs the parent's handler.
//! - **SIGHUP, SIGUSR1, SIGUSR2 to the daemon** never kill it (their default action would, and
//!   a closed terminal sends SIGHUP to a `-f` mount): they are logged and otherwise ignored.
//!   `micloudfs unmount` or SIGTERM end a mount.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, PoisonError};

use fuser::SessionUnmounter;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

// ---- the parent of a daemonized mount ----

/// The daemon's pid, for the parent's handler (0: none yet).
static CHILD: AtomicI32 = AtomicI32::new(0);
/// Whether the parent passed a signal on.
static FORWARDED: AtomicBool = AtomicBool::new(false);

const STOP_SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// The signal mask before [`block_stop_signals`].
pub(crate) struct SavedMask(libc::sigset_t);

/// Blocks SIGINT and SIGTERM (call before `fork`); the previous mask.
pub(crate) fn block_stop_signals() -> SavedMask {
    // SAFETY: sigset_t is plain data; the calls fill and apply it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in STOP_SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
        SavedMask(old)
    }
}

/// Puts the mask back (the daemon child, right after `fork`).
pub(crate) fn restore(mask: &SavedMask) {
    // SAFETY: applying a mask obtained from sigprocmask.
    unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, &mask.0, std::ptr::null_mut());
    }
}

extern "C" fn forward(sig: libc::c_int) {
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0 {
        FORWARDED.store(true, Ordering::SeqCst);
        // SAFETY: kill is async-signal-safe; child is the daemon this process forked.
        unsafe {
            libc::kill(child, sig);
        }
    }
}

/// In the parent after `fork`: SIGINT/SIGTERM go on to `child`; then the mask is restored
/// (a signal that came meanwhile is delivered now).
pub(crate) fn forward_to(child: libc::pid_t, mask: &SavedMask) {
    CHILD.store(child, Ordering::SeqCst);
    // SAFETY: installing a handler that only calls async-signal-safe functions.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = forward as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        for s in STOP_SIGNALS {
            libc::sigaction(s, &action, std::ptr::null_mut());
        }
    }
    restore(mask);
}

/// In the parent once the daemon answered: no more forwarding (later signals wait, blocked,
/// until the parent exits). Whether a signal was passed on before.
pub(crate) fn stop_forwarding() -> bool {
    let _ = block_stop_signals();
    FORWARDED.load(Ordering::SeqCst)
}

/// Waits for the daemon to exit (it does soon after a failed start or a forwarded signal).
pub(crate) fn reap(child: libc::pid_t) {
    loop {
        let mut status = 0;
        // SAFETY: waiting for this process's own child.
        let rc = unsafe { libc::waitpid(child, &mut status, 0) };
        if rc == child
            || (rc == -1 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
        {
            return;
        }
    }
}

// ---- the daemon ----

enum State {
    Starting,
    Stopping,
    Live(SessionUnmounter),
}

/// Where the daemon is between start and unmount, as the signal handlers see it.
pub(crate) struct Lifecycle {
    state: Mutex<State>,
    stop_tx: watch::Sender<bool>,
}

/// What [`Lifecycle::go_live`] says when a stop came first.
pub(crate) const INTERRUPTED: &str =
    "interrupted before the mount was ready; nothing is mounted and the daemon stopped; what \
     was listed so far is kept, and the next `micloudfs mount` resumes from there";

impl Lifecycle {
    /// Installs the daemon's handlers on the runtime: SIGINT/SIGTERM stop, SIGHUP and
    /// SIGUSR2 are logged and ignored, SIGUSR1 asks the live refresh (`cli::live`) for a refresh. Call before anything slow.
    pub fn install(rt: &tokio::runtime::Runtime) -> Result<std::sync::Arc<Lifecycle>, String> {
        let (stop_tx, _) = watch::channel(false);
        let life = std::sync::Arc::new(Lifecycle {
            state: Mutex::new(State::Starting),
            stop_tx,
        });
        let _guard = rt.enter();
        let listen = |kind: SignalKind| {
            signal(kind).map_err(|e| format!("cannot set up signal handling: {e}"))
        };
        let (mut term, mut int) = (
            listen(SignalKind::terminate())?,
            listen(SignalKind::interrupt())?,
        );
        let mut hup = listen(SignalKind::hangup())?;
        let mut usr1 = listen(SignalKind::user_defined1())?;
        let mut usr2 = listen(SignalKind::user_defined2())?;
        let stopper = life.clone();
        rt.spawn(async move {
            loop {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                stopper.stop(name);
            }
        });
        rt.spawn(async move {
            loop {
                let name = tokio::select! {
                    _ = hup.recv() => "SIGHUP",
                    _ = usr2.recv() => "SIGUSR2",
                    _ = usr1.recv() => {
                        // `micloudfs refresh` sends it; the live refresh listens for it too.
                        tracing::info!("SIGUSR1 received: a catalog refresh is asked for; the mount stays");
                        continue;
                    }
                };
                tracing::info!(
                    "{name} received and ignored; the mount stays (micloudfs unmount MOUNTPOINT \
                     or SIGTERM ends it)"
                );
            }
        });
        Ok(life)
    }

    fn stop(&self, name: &str) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *state {
            State::Starting | State::Stopping => {
                tracing::info!("{name} received before the mount was ready; stopping");
                *state = State::Stopping;
                self.stop_tx.send_replace(true);
            }
            State::Live(unmounter) => {
                tracing::info!("{name} received; unmounting");
                if let Err(e) = unmounter.unmount() {
                    tracing::error!(
                        error = %e,
                        "cannot unmount (is a program still using the mount?); close it and \
                         send the signal again, or run `micloudfs unmount --lazy MOUNTPOINT`"
                    );
                }
            }
        }
    }

    /// Completes when a stop was asked before the mount was live.
    pub async fn stop_requested(&self) {
        let mut rx = self.stop_tx.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// Err([`INTERRUPTED`]) if a stop was asked.
    pub fn check(&self) -> Result<(), String> {
        match *self.state.lock().unwrap_or_else(PoisonError::into_inner) {
            State::Stopping => Err(INTERRUPTED.to_string()),
            _ => Ok(()),
        }
    }

    /// The kernel mount is made: from now on a stop unmounts. Err([`INTERRUPTED`]) if a stop
    /// came first (the caller drops the session, which unmounts).
    pub fn go_live(&self, unmounter: SessionUnmounter) -> Result<(), String> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            State::Stopping => Err(INTERRUPTED.to_string()),
            _ => {
                *state = State::Live(unmounter);
                Ok(())
            }
        }
    }
}
