//! A voice or call recording (spec §3.12): its body and base fields as an [`Item`], plus the
//! recorder's own metadata. Recording ids are even 17-digit numbers, gallery ids odd, so the
//! two id spaces never collide and the shared download URLs can serve both.

use crate::model::item::Item;

/// A recording and its recorder metadata.
#[derive(Clone, Debug)]
pub struct Recording {
    /// The body and base fields (id, base name, size, sha1, times) as an item.
    pub file: Item,
    /// `0` recorder, `1` phone call, `2` FM, `3` app.
    pub kind: u8,
    pub duration_s: u64,
    pub ver: u64,
    pub modify_time: i64,
    pub deleted: bool,
}

impl Recording {
    /// The encoded `name`: `<name>_<duration>_<type>_<create ms>_<modify ms>`.
    pub fn wire_name(&self) -> String {
        format!(
            "{}_{}_{}_{}_{}",
            self.file.file_name,
            self.duration_s,
            self.kind,
            self.file.create_time,
            self.modify_time
        )
    }
}
