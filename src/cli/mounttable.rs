//! The mount table: what is mounted where, and whether it is a micloudfs mount.
//!
//! Read from `/proc/self/mountinfo` (proc(5)): one line per mount, space-separated,
//! `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS`.
//! The kernel writes space, tab, newline and backslash in paths as three-digit octal escapes
//! (`\040`), so a mount point is unescaped byte by byte before it is compared. No crate is
//! used: the one well-kept parser (procfs) leaves those escapes in the path, and the format
//! is a dozen lines to read.
//!
//! A micloudfs mount is a FUSE mount whose source is `micloudfs` (the daemon's `FSName`):
//! the type is `fuse` when root mounts it directly and `fuse.micloudfs` (its `Subtype`) when
//! `fusermount3` does. `unmount` accepts only those, so it can never take down a tmpfs or
//! another FUSE file system by a mistyped path.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// The `FSName` and `Subtype` the daemon mounts with.
pub(crate) const FS_NAME: &str = "micloudfs";

/// One line of the mount table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
}

impl MountEntry {
    /// Whether micloudfs made this mount (alive or with its daemon gone).
    pub fn is_micloudfs(&self) -> bool {
        let fuse = self.fs_type == "fuse" || self.fs_type == format!("fuse.{FS_NAME}");
        fuse && self.source == FS_NAME
    }

    /// "tmpfs (tmpfs)": how the entry is named in messages.
    pub fn describe(&self) -> String {
        format!("a {} file system (source {:?})", self.fs_type, self.source)
    }
}

/// The mount on `path` (canonical), the last one when mounts are stacked, if any.
pub(crate) fn mount_at(path: &Path) -> Option<MountEntry> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    parse(&table).into_iter().rfind(|m| m.mount_point == path)
}

/// Every well-formed line of a mountinfo text (malformed lines are skipped).
pub(crate) fn parse(table: &str) -> Vec<MountEntry> {
    table.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let fields: Vec<&str> = line.split(' ').collect();
    let mount_point = fields.get(4)?;
    let dash = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    let fs_type = fields.get(dash + 1)?;
    let source = fields.get(dash + 2)?;
    Some(MountEntry {
        mount_point: PathBuf::from(OsString::from_vec(unescape(mount_point))),
        fs_type: String::from_utf8_lossy(&unescape(fs_type)).into_owned(),
        source: String::from_utf8_lossy(&unescape(source)).into_owned(),
    })
}

/// Undoes the kernel's `\ooo` octal escapes.
fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) if b[i] == b'\\' => {
                let v = (u32::from(d[0] - b'0') << 6)
                    | (u32::from(d[1] - b'0') << 3)
                    | u32::from(d[2] - b'0');
                out.push(v as u8);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
42 27 0:39 / /tmp/m/mnt ro,nosuid,nodev,noatime - fuse micloudfs ro,user_id=0,group_id=0,default_permissions
43 27 0:40 / /tmp/with\\040space\\134x rw,relatime shared:1 master:2 - tmpfs tmpfs rw,size=1024k
44 27 0:41 / /home/u/mnt ro,nosuid,nodev - fuse.micloudfs micloudfs ro,user_id=1000,group_id=1000
45 27 0:42 / /home/u/other rw - fuse.sshfs host:/ rw,user_id=1000
46 27 0:43 / /home/u/fake rw - fuse notmicloudfs rw
garbage line
";

    #[test]
    fn parses_targets_types_and_sources_with_escapes() {
        let t = parse(TABLE);
        assert_eq!(t.len(), 6, "the garbage line is skipped");
        assert_eq!(t[2].mount_point, Path::new("/tmp/with space\\x"));
        assert_eq!(t[2].fs_type, "tmpfs");
        assert_eq!(t[1].source, "micloudfs");
        assert_eq!(t[3].fs_type, "fuse.micloudfs");
    }

    #[test]
    fn only_fuse_mounts_named_micloudfs_are_ours() {
        let ours: Vec<bool> = parse(TABLE).iter().map(|m| m.is_micloudfs()).collect();
        assert_eq!(ours, [false, true, false, true, false, false]);
    }

    #[test]
    fn unescape_leaves_other_backslashes_alone() {
        assert_eq!(unescape("a\\040b"), b"a b");
        assert_eq!(unescape("a\\09b\\"), b"a\\09b\\");
        assert_eq!(unescape("\\303\\251"), "é".as_bytes());
    }
}
