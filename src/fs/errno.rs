//! The one place where typed errors become errno values for the kernel (DESIGN.md §6).

use fuser::Errno;

use crate::cloud::CloudError;
use crate::content::ContentError;

/// What a reader gets for a failed fetch. Logged by the caller, with the cause.
pub fn for_content(e: &ContentError) -> Errno {
    match e {
        ContentError::Deleted(_) => Errno::ENOENT,
        ContentError::Mismatch { .. } => Errno::EIO,
        ContentError::Cloud(c) => match &**c {
            CloudError::ItemDeleted(_) => Errno::ENOENT,
            _ => Errno::EIO,
        },
        ContentError::Io { source, .. } => match source.raw_os_error() {
            Some(libc::ENOSPC) => Errno::ENOSPC,
            _ => Errno::EIO,
        },
        ContentError::NoRoom { .. } | ContentError::TooBigForMemory { .. } => Errno::EIO,
        ContentError::ShuttingDown
        | ContentError::TimedOut { .. }
        | ContentError::Poisoned { .. }
        | ContentError::Cancelled(_)
        | ContentError::Internal(_) => Errno::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ItemId;
    use std::sync::Arc;

    #[test]
    fn mapping() {
        assert_eq!(
            for_content(&ContentError::Deleted(ItemId(1))),
            Errno::ENOENT
        );
        let m = ContentError::Mismatch {
            id: ItemId(1),
            detail: String::new(),
        };
        assert_eq!(for_content(&m), Errno::EIO);
        let t = ContentError::Cloud(Arc::new(CloudError::PassTokenRejected));
        assert_eq!(for_content(&t), Errno::EIO);
        let full = ContentError::io(
            std::path::Path::new("/x"),
            "write",
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert_eq!(for_content(&full), Errno::ENOSPC);
    }
}
