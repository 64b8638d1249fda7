//! `RangeSet`: a set of byte offsets kept as sorted, disjoint, non-adjacent half-open
//! intervals. It is the bookkeeping of a download in parts: which bytes are on hand, which
//! are asked for, which were handed to the kernel.
//!
//! Operations are O(n) in the number of intervals, which stays small: a sequential reader
//! makes one interval, a player that seeks makes a handful, and 32 random readers of one
//! file make at most a few hundred.

use std::ops::Range;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// Sorted by start; no two touch or overlap; none is empty.
    spans: Vec<Range<u64>>,
}

impl RangeSet {
    pub fn new() -> RangeSet {
        RangeSet::default()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn spans(&self) -> &[Range<u64>] {
        &self.spans
    }

    /// Total bytes in the set.
    pub fn len(&self) -> u64 {
        self.spans.iter().map(|r| r.end - r.start).sum()
    }

    /// Adds `r` (merging with neighbours it touches).
    pub fn insert(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        // First span that ends at or after r.start (it may touch or overlap r).
        let i = self.spans.partition_point(|s| s.end < r.start);
        let mut start = r.start;
        let mut end = r.end;
        let mut j = i;
        while j < self.spans.len() && self.spans[j].start <= end {
            start = start.min(self.spans[j].start);
            end = end.max(self.spans[j].end);
            j += 1;
        }
        self.spans.splice(i..j, std::iter::once(start..end));
    }

    /// Removes `r`.
    pub fn remove(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        let mut out = Vec::with_capacity(self.spans.len() + 1);
        for s in self.spans.drain(..) {
            if s.end <= r.start || s.start >= r.end {
                out.push(s);
                continue;
            }
            if s.start < r.start {
                out.push(s.start..r.start);
            }
            if s.end > r.end {
                out.push(r.end..s.end);
            }
        }
        self.spans = out;
    }

    /// Whether some byte of `r` is in the set.
    pub fn overlaps(&self, r: &Range<u64>) -> bool {
        let i = self.spans.partition_point(|s| s.end <= r.start);
        self.spans.get(i).is_some_and(|s| s.start < r.end)
    }

    /// Whether every byte of `r` is in the set (an empty `r` is).
    pub fn contains(&self, r: &Range<u64>) -> bool {
        if r.start >= r.end {
            return true;
        }
        let i = self.spans.partition_point(|s| s.end <= r.start);
        self.spans
            .get(i)
            .is_some_and(|s| s.start <= r.start && s.end >= r.end)
    }

    /// The parts of `r` that are not in the set, in order.
    pub fn gaps(&self, r: Range<u64>) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        let mut at = r.start;
        for s in &self.spans {
            if s.end <= at {
                continue;
            }
            if s.start >= r.end {
                break;
            }
            if s.start > at {
                out.push(at..s.start.min(r.end));
            }
            at = at.max(s.end);
            if at >= r.end {
                break;
            }
        }
        if at < r.end {
            out.push(at..r.end);
        }
        out
    }

    /// The end of the run of bytes that starts at `from` (`from` itself if `from` is absent).
    pub fn run_end(&self, from: u64) -> u64 {
        let i = self.spans.partition_point(|s| s.end <= from);
        match self.spans.get(i) {
            Some(s) if s.start <= from => s.end,
            _ => from,
        }
    }

    /// Whether the set holds all of `0..len`.
    pub fn covers(&self, len: u64) -> bool {
        self.contains(&(0..len))
    }

    /// The union of the set and `r` covers `0..len`.
    pub fn covers_with(&self, r: &Range<u64>, len: u64) -> bool {
        self.gaps(0..len)
            .iter()
            .all(|g| g.start >= r.start && g.end <= r.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn insert_merges_touching_and_overlapping() {
        let mut s = RangeSet::new();
        s.insert(10..20);
        s.insert(30..40);
        s.insert(20..25);
        assert_eq!(s.spans(), &[10..25, 30..40]);
        s.insert(5..35);
        assert_eq!(s.spans(), std::slice::from_ref(&(5..40)));
        s.insert(50..50);
        assert_eq!(s.len(), 35);
    }

    #[test]
    fn gaps_contains_and_runs() {
        let mut s = RangeSet::new();
        s.insert(10..20);
        s.insert(30..40);
        assert_eq!(s.gaps(0..50), vec![0..10, 20..30, 40..50]);
        assert_eq!(s.gaps(12..18), Vec::<Range<u64>>::new());
        assert_eq!(s.gaps(15..35), vec![20..30]);
        assert!(s.contains(&(10..20)));
        assert!(!s.contains(&(10..21)));
        assert_eq!(s.run_end(12), 20);
        assert_eq!(s.run_end(20), 20);
        assert!(s.covers_with(&(0..30), 40));
        assert!(!s.covers_with(&(0..29), 40));
        s.remove(12..35);
        assert_eq!(s.spans(), &[10..12, 35..40]);
    }

    proptest! {
        /// The set agrees with a plain bitmap under any mix of inserts and removes.
        #[test]
        fn behaves_like_a_bitmap(ops in proptest::collection::vec((any::<bool>(), 0u64..200, 0u64..60), 0..40)) {
            let mut s = RangeSet::new();
            let mut bits = vec![false; 300];
            for (add, start, len) in ops {
                let r = start..start + len;
                if add { s.insert(r.clone()) } else { s.remove(r.clone()) }
                for b in &mut bits[r.start as usize..r.end as usize] { *b = add; }
            }
            let want: u64 = bits.iter().filter(|b| **b).count() as u64;
            prop_assert_eq!(s.len(), want);
            for w in s.spans().windows(2) {
                prop_assert!(w[0].end < w[1].start);
            }
            for (i, b) in bits.iter().enumerate() {
                prop_assert_eq!(s.contains(&(i as u64..i as u64 + 1)), *b);
                prop_assert_eq!(s.overlaps(&(i as u64..i as u64 + 1)), *b);
            }
            let gaps: u64 = s.gaps(0..300).iter().map(|g| g.end - g.start).sum();
            prop_assert_eq!(gaps, 300 - want);
        }
    }
}
