//! The FUSE adapter: kernel operation → `view` / data-path call → reply. No policy here.
//!
//! - Metadata operations (lookup, getattr, readdir[plus], xattrs, statfs) are answered from
//!   the in-memory `View` on the FUSE thread: no I/O, microseconds each.
//! - `open`, `read` and `release` go to the data path's core ([`data::DataCore`], async,
//!   unit-tested without a kernel); their replies are sent from tokio tasks, so no FUSE
//!   thread ever waits on the network. `open` of a verified cache file is answered with a
//!   passthrough backing file where the kernel allows it ([`passthrough`]): the kernel
//!   then reads the cache file itself.
//! - Content is immutable, so files are opened with `FOPEN_KEEP_CACHE` and entries and
//!   attributes get a long TTL (`ATTR_TTL`): a second `rsync` or `ls -l` costs no upcalls.
//!   A download found not to match its SHA-1 after some of it was read drops the inode's
//!   pages (`inval_inode`, through [`GalleryFs::install_notifier`]).
//! - The kernel may send reads of up to 1 MiB (`max_pages` 256; fuser asks for
//!   `FUSE_MAX_PAGES`), keep 64 requests in the background, and the daemon raises the
//!   mount's readahead to [`READAHEAD_KB`] where it may (`/sys/class/bdi`, root only).
//! - Every write-like operation answers EROFS; the mount is also made `ro` in the kernel.
//! - The tree is a [`LiveView`]: a refresh swaps in a new `View` and tells the kernel what
//!   changed ([`invalidate`]); a request works on the view it started with.
//! - `readdir[plus]` starts at any offset in O(1) (the offset indexes the sorted children);
//!   the xattrs `ls -l` asks of every entry (`security.selinux`, `system.posix_acl_*`) are
//!   answered EOPNOTSUPP before anything is looked up: the mount has no security labels and
//!   no ACLs, and on "not supported" (unlike ENODATA) GNU `ls` stops asking for the rest of
//!   the device, so `ls -lR` makes 2 getxattr upcalls in all instead of 2 per entry
//!   (rsync -A/-X and cp -a take EOPNOTSUPP as "none"). `user.*` attributes are served. The root carries `user.micloudfs.pid`,
//!   `.refreshes` and `.last_refresh`, which `micloudfs refresh` reads, and `.status` (the
//!   path of the status file), which `micloudfs status MOUNTPOINT` reads.

pub mod data;
mod errno;
mod invalidate;
pub mod passthrough;
pub mod prefetch;
pub mod viewtree;

pub use invalidate::invalidate;

use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::content::ContentCache;
use crate::view::{Ino, Node, NodeKind, View};
use data::DataCore;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, KernelConfig,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};
use passthrough::Passthrough;

/// Entries and attributes never change while mounted (the tree is built once, at mount).
const ATTR_TTL: Duration = Duration::from_secs(3600);
/// `st_blksize`: `cp` and friends size their buffers from it; 128 KiB halves the upcalls
/// of the 4 KiB default... and matches the kernel's largest FUSE read.
const BLKSIZE: u32 = 128 * 1024;

/// The mount's readahead, where the daemon may set it: 1 MiB lets the kernel ask for a
/// cold file's bytes in requests of the largest size (and keeps a random 1 MiB read from
/// pulling in more than 2 MiB).
pub const READAHEAD_KB: u32 = 1024;

/// The tree being served, replaced whole by a refresh, and what the mount says about itself
/// (the root's `user.micloudfs.*` attributes, read by `micloudfs refresh`).
pub struct LiveView {
    current: RwLock<Arc<View>>,
    /// Completed refreshes (attempts, failed or not).
    pub refreshes: AtomicU64,
    /// One line on the last refresh (or the first sync), and the albums that are incomplete.
    pub last_refresh: Mutex<String>,
    /// The daemon's status file (the root's `user.micloudfs.status`), once it has one.
    pub status_file: std::sync::OnceLock<std::path::PathBuf>,
}

impl LiveView {
    pub fn new(view: Arc<View>) -> Arc<LiveView> {
        Arc::new(LiveView {
            current: RwLock::new(view),
            refreshes: AtomicU64::new(0),
            last_refresh: Mutex::new(String::new()),
            status_file: std::sync::OnceLock::new(),
        })
    }

    pub fn get(&self) -> Arc<View> {
        self.current
            .read()
            .map(|v| Arc::clone(&v))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    /// Serves `view` from now on; returns the one it replaces.
    pub fn replace(&self, view: Arc<View>) -> Arc<View> {
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *cur, view)
    }

    /// Records the end of a refresh (`line` says how it went).
    pub fn refreshed(&self, line: String) {
        if let Ok(mut l) = self.last_refresh.lock() {
            *l = line;
        }
        self.refreshes.fetch_add(1, Ordering::SeqCst);
    }
}

pub struct GalleryFs {
    live: Arc<LiveView>,
    core: Arc<DataCore>,
    passthrough: Arc<Passthrough>,
    rt: tokio::runtime::Handle,
    uid: u32,
    gid: u32,
}

impl GalleryFs {
    pub fn new(
        live: Arc<LiveView>,
        content: Arc<ContentCache>,
        rt: tokio::runtime::Handle,
    ) -> Self {
        // SAFETY: geteuid/getegid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let cap = content.max_bytes();
        let tree = Arc::new(viewtree::ViewTree(live.clone()));
        let passthrough = Arc::new(Passthrough::new());
        // An idle backing id holds its object's file open: an evicted object would keep
        // its room on the cache disk for as long as it stays registered.
        let pt = passthrough.clone();
        content.set_evicted(Box::new(move || pt.drop_idle()));
        GalleryFs {
            live,
            core: Arc::new(DataCore::new(tree, content, cap, rt.clone())),
            passthrough,
            rt,
            uid,
            gid,
        }
    }

    /// The data path's core (counters, tests).
    pub fn core(&self) -> Arc<DataCore> {
        self.core.clone()
    }

    /// Lets the data path drop the kernel's pages of an inode (once the session exists).
    pub fn install_notifier(core: &DataCore, notifier: fuser::Notifier) {
        let notifier = Arc::new(notifier);
        core.set_kernel(Box::new(move |ino| {
            let n = notifier.clone();
            // Off the async threads: the kernel waits for pages being read to unlock.
            std::thread::spawn(move || {
                if let Err(e) = n.inval_inode(INodeNo(ino), 0, 0) {
                    tracing::debug!(ino, error = %e, "cannot drop the kernel's pages of an inode");
                }
            });
        }));
    }

    fn attr(&self, node: &Node<'_>) -> FileAttr {
        let mtime = UNIX_EPOCH
            .checked_add(Duration::from_millis(node.mtime_ms.max(0) as u64))
            .unwrap_or(UNIX_EPOCH);
        let (kind, perm, nlink) = match node.kind {
            NodeKind::Dir => (FileType::Directory, 0o555, 2),
            _ => (FileType::RegularFile, 0o444, 1),
        };
        FileAttr {
            ino: INodeNo(node.ino),
            size: node.size,
            blocks: node.size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: BLKSIZE,
            flags: 0,
        }
    }

    fn view(&self) -> Arc<View> {
        self.live.get()
    }

    fn xattrs(&self, view: &View, ino: Ino) -> Vec<(&'static str, String)> {
        if ino == crate::view::ROOT_INO {
            let last = self
                .live
                .last_refresh
                .lock()
                .map(|l| l.clone())
                .unwrap_or_default();
            let mut attrs = vec![
                ("user.micloudfs.pid", std::process::id().to_string()),
                (
                    "user.micloudfs.refreshes",
                    self.live.refreshes.load(Ordering::SeqCst).to_string(),
                ),
                ("user.micloudfs.last_refresh", last),
            ];
            if let Some(p) = self.live.status_file.get() {
                attrs.push(("user.micloudfs.status", p.display().to_string()));
            }
            return attrs;
        }
        match view.item(ino) {
            Some(it) => vec![
                ("user.micloud.id", it.id.to_string()),
                ("user.micloud.sha1", it.sha1.to_hex()),
                ("user.micloud.mime", it.mime_type.to_string()),
                ("user.micloud.album", it.album_id.to_string()),
            ],
            None => vec![],
        }
    }
}

/// The entries of a directory from position `offset` on, "." and ".." first, as
/// (next offset, node, name). O(1) to start at any offset and O(1) per entry: a readdir call
/// costs the entries it returns, never the ones before them (a 100 000-file album is read in
/// a few hundred calls, each as cheap as the first).
fn entries<'a>(
    view: &'a View,
    dir: Node<'a>,
    children: &'a [Ino],
    offset: u64,
) -> impl Iterator<Item = (u64, Node<'a>, &'a str)> + 'a {
    let parent = view.node(dir.parent.max(1)).unwrap_or(dir);
    let dots: [(Node<'a>, &str); 2] = [(dir, "."), (parent, "..")];
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let dots = dots
        .into_iter()
        .enumerate()
        .skip(start)
        .map(|(i, (n, name))| (i as u64 + 1, n, name));
    let first_child = start.saturating_sub(2).min(children.len());
    let rest = children[first_child..]
        .iter()
        .enumerate()
        .filter_map(move |(k, &c)| {
            let pos = (first_child + k + 2) as u64;
            view.node(c).map(|n| (pos + 1, n, n.name))
        });
    dots.chain(rest)
}

/// Answers an open with its handle: as a passthrough backing file where the kernel takes
/// it (the data path is then told), else as a handle the daemon reads.
fn reply_opened(
    core: &DataCore,
    passthrough: &Passthrough,
    reply: ReplyOpen,
    ino: Ino,
    opening: data::Opening,
) {
    // Told before the reply: a program may read the file and close it at once.
    passthrough.reply(
        reply,
        ino,
        opening.fh,
        FopenFlags::FOPEN_KEEP_CACHE,
        opening.backing.as_deref(),
        || core.note_passthrough(opening.fh),
    );
}

/// Answers an xattr request of `size` with `data` (a size probe when `size` is 0).
fn reply_xattr(reply: ReplyXattr, size: u32, data: &[u8]) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if data.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(data);
    }
}

impl fuser::Filesystem for GalleryFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        let _ = config.set_max_readahead(1024 * 1024);
        // `ls -l` and rsync get names and attributes in one upcall per buffer.
        let _ = config.add_capabilities(
            fuser::InitFlags::FUSE_DO_READDIRPLUS | fuser::InitFlags::FUSE_READDIRPLUS_AUTO,
        );
        // Verified cache files are read by the kernel directly, where it can.
        let passthrough = config
            .add_capabilities(fuser::InitFlags::FUSE_PASSTHROUGH)
            .is_ok()
            && config.set_max_stack_depth(1).is_ok();
        self.passthrough.set_enabled(passthrough);
        if passthrough {
            tracing::info!(
                "FUSE passthrough: verified cached files are read by the kernel directly"
            );
        } else {
            tracing::info!("FUSE passthrough not offered by this kernel (it needs 6.9 or later); cached files are read through the daemon");
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let view = self.view();
        let found = name.to_str().and_then(|n| view.lookup(parent.0, n));
        match found {
            Some(node) => reply.entry(&ATTR_TTL, &self.attr(&node), Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.view().node(ino.0) {
            Some(node) => reply.attr(&ATTR_TTL, &self.attr(&node)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.0 & (libc::O_WRONLY | libc::O_RDWR | libc::O_TRUNC | libc::O_APPEND);
        if write != 0 {
            return reply.error(Errno::EROFS);
        }
        // The warm path: a verified object is opened here, on the FUSE thread.
        if let Some(opening) = self.core.open_now(ino.0) {
            return reply_opened(&self.core, &self.passthrough, reply, ino.0, opening);
        }
        let (core, passthrough) = (self.core.clone(), self.passthrough.clone());
        self.rt.spawn(async move {
            match core.open(ino.0).await {
                Ok(opening) => reply_opened(&core, &passthrough, reply, ino.0, opening),
                Err(errno) => reply.error(errno),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let core = self.core.clone();
        self.rt.spawn(async move {
            match core.read(fh.0, offset, size).await {
                Ok(buf) => reply.data(&buf),
                Err(errno) => reply.error(errno),
            }
        });
    }

    /// Called at every close(); nothing is buffered, so nothing to do.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.core.release(fh.0);
        self.passthrough.release(fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.view().children(ino.0) {
            Some(_) => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR,
            ),
            None => reply.error(Errno::ENOTDIR),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let view = self.view();
        let (Some(dir), Some(children)) = (view.node(ino.0), view.children(ino.0)) else {
            return reply.error(Errno::ENOTDIR);
        };
        for (next, node, name) in entries(&view, dir, children, offset) {
            let kind = if node.kind == NodeKind::Dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            if reply.add(INodeNo(node.ino), next, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let view = self.view();
        let (Some(dir), Some(children)) = (view.node(ino.0), view.children(ino.0)) else {
            return reply.error(Errno::ENOTDIR);
        };
        for (next, node, name) in entries(&view, dir, children, offset) {
            let attr = self.attr(&node);
            if reply.add(
                INodeNo(node.ino),
                next,
                name,
                &ATTR_TTL,
                &attr,
                Generation(0),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let view = self.view();
        let bytes = view
            .items()
            .iter()
            .fold(0u64, |t, i| t.saturating_add(i.size));
        let files = view.items().len() as u64;
        reply.statfs(bytes.div_ceil(4096), 0, 0, files, 0, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        // What `ls -l` asks of every entry (security.selinux, system.posix_acl_*): answered
        // before anything is looked up, and "not supported" rather than "no such attribute":
        // `ls` then remembers that this file system has neither (per device) and stops asking,
        // which saves two upcalls per entry of `ls -l` (see the module doc).
        let n = name.as_encoded_bytes();
        if n.starts_with(b"security.") || n.starts_with(b"system.") {
            return reply.error(Errno::EOPNOTSUPP);
        }
        if !n.starts_with(b"user.") {
            return reply.error(Errno::NO_XATTR);
        }
        let view = self.view();
        if view.node(ino.0).is_none() {
            return reply.error(Errno::ENOENT);
        }
        match self
            .xattrs(&view, ino.0)
            .into_iter()
            .find(|(n, _)| OsStr::new(n) == name)
        {
            Some((_, value)) => reply_xattr(reply, size, value.as_bytes()),
            None => reply.error(Errno::NO_XATTR),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let view = self.view();
        if view.node(ino.0).is_none() {
            return reply.error(Errno::ENOENT);
        }
        let mut names = Vec::new();
        for (n, _) in self.xattrs(&view, ino.0) {
            names.extend_from_slice(n.as_bytes());
            names.push(0);
        }
        reply_xattr(reply, size, &names);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        if self.view().node(ino.0).is_none() {
            reply.error(Errno::ENOENT)
        } else if mask.bits() & libc::W_OK != 0 {
            reply.error(Errno::EROFS)
        } else {
            reply.ok()
        }
    }

    // Everything that would change the tree: read-only.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(&self, _: &Request, _: INodeNo, _: &OsStr, _: u32, _: u32, _: u32, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(&self, _: &Request, _: INodeNo, _: &OsStr, _: u32, _: u32, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _: &Request, _: INodeNo, _: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _: &Request, _: INodeNo, _: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(&self, _: &Request, _: INodeNo, _: &OsStr, _: &std::path::Path, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _: &Request,
        _: INodeNo,
        _: &OsStr,
        _: INodeNo,
        _: &OsStr,
        _: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(&self, _: &Request, _: INodeNo, _: INodeNo, _: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _: &Request,
        _: INodeNo,
        _: FileHandle,
        _: u64,
        _: &[u8],
        _: fuser::WriteFlags,
        _: OpenFlags,
        _: Option<fuser::LockOwner>,
        reply: fuser::ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _: &Request,
        _: INodeNo,
        _: &OsStr,
        _: u32,
        _: u32,
        _: i32,
        reply: fuser::ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _: &Request,
        _: INodeNo,
        _: &OsStr,
        _: &[u8],
        _: i32,
        _: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _: &Request, _: INodeNo, _: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _: &Request,
        _: INodeNo,
        _: FileHandle,
        _: u64,
        _: u64,
        _: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }
}
