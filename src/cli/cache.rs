//! `micloudfs cache check [--repair]`: every cached original checked against its name.
//!
//! Safe while a mount uses the same cache: checking only reads, and a repair deletes only
//! objects that are wrong (a running daemon fetches them again) and `.part` files that no
//! live download holds; resumable downloads are kept (a read resumes them).

use super::CacheCheckArgs;
use crate::account;
use crate::content::check::check_cache;

pub(crate) fn check(args: CacheCheckArgs) -> Result<(), String> {
    let dir = account::cache_dir(args.cache_dir)?;
    let report = check_cache(&dir, args.repair).map_err(|e| {
        format!(
            "cannot check the cache {}: {e}; pass the right one with --cache-dir",
            dir.display()
        )
    })?;
    let mib = report.bytes_read as f64 / (1024.0 * 1024.0);
    let rate = if report.seconds > 0.0 {
        mib / report.seconds
    } else {
        0.0
    };
    println!(
        "checked {} objects ({mib:.1} MiB) in {:.2} s ({rate:.0} MiB/s) in {}",
        report.ok + report.damaged.len(),
        report.seconds,
        dir.display()
    );
    println!(
        "  {} ok ({:.1} MiB)",
        report.ok,
        report.ok_bytes as f64 / (1024.0 * 1024.0)
    );
    let verb = if report.repaired { "deleted" } else { "found" };
    for (path, why) in &report.damaged {
        println!("  damaged ({verb}): {} ({why})", path.display());
    }
    for path in &report.stray {
        println!("  stray file ({verb}): {}", path.display());
    }
    if report.stale_parts > 0 {
        println!("  {} stale partial download(s) {verb}", report.stale_parts);
    }
    if report.resumable > 0 {
        println!(
            "  {} resumable download(s) kept ({:.1} MiB): the next read of each resumes it, \
             re-checking its parts first",
            report.resumable,
            report.resumable_bytes as f64 / (1024.0 * 1024.0)
        );
    }
    if report.is_clean() || report.repaired {
        if report.repaired && !report.is_clean() {
            println!("repaired: the deleted files are downloaded again when next read");
        }
        Ok(())
    } else {
        Err(format!(
            "the cache has {} damaged object(s) and {} stray or stale file(s); run `micloudfs \
             cache check --repair` to delete them (they are downloaded again when next read)",
            report.damaged.len(),
            report.stray.len() + report.stale_parts
        ))
    }
}
