//! The `View` as the data path sees it ([`super::data::Tree`]): items, generated files,
//! and the files of a folder in listing order for the prefetcher. Each question is asked
//! of the tree being served at that moment (a refresh may have replaced it).

use std::sync::Arc;

use super::data::Tree;
use super::prefetch::Siblings;
use super::LiveView;
use crate::model::Item;
use crate::view::{Ino, NodeKind};

pub struct ViewTree(pub Arc<LiveView>);

impl Siblings for ViewTree {
    fn folder_of(&self, ino: Ino) -> Option<Ino> {
        self.0.get().node(ino).map(|n| n.parent)
    }

    fn files_of(&self, folder: Ino) -> Vec<(Ino, Item)> {
        let view = self.0.get();
        view.children(folder)
            .unwrap_or_default()
            .iter()
            .filter_map(|&c| view.item(c).map(|it| (c, it.clone())))
            .collect()
    }
}

impl Tree for ViewTree {
    fn item(&self, ino: Ino) -> Option<Item> {
        self.0.get().item(ino).cloned()
    }

    fn generated(&self, ino: Ino) -> Option<Arc<[u8]>> {
        let view = self.0.get();
        match view.node(ino)?.kind {
            NodeKind::Sha1Sums => view.sha1sums(ino),
            _ => None,
        }
    }

    fn exists(&self, ino: Ino) -> bool {
        self.0.get().node(ino).is_some()
    }

    fn is_dir(&self, ino: Ino) -> bool {
        self.0
            .get()
            .node(ino)
            .is_some_and(|n| n.kind == NodeKind::Dir)
    }
}
