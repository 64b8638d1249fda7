//! The `View` as the data path sees it ([`super::data::Tree`]): items, generated files,
//! and the files of a folder in listing order for the prefetcher.

use std::sync::Arc;

use super::data::Tree;
use super::prefetch::Siblings;
use crate::model::Item;
use crate::view::{Ino, NodeKind, View};

pub struct ViewTree(pub Arc<View>);

impl Siblings for ViewTree {
    fn folder_of(&self, ino: Ino) -> Option<Ino> {
        self.0.node(ino).map(|n| n.parent)
    }

    fn files_of(&self, folder: Ino) -> Vec<(Ino, Item)> {
        self.0
            .children(folder)
            .unwrap_or_default()
            .iter()
            .filter_map(|&c| self.0.item(c).map(|it| (c, it.clone())))
            .collect()
    }
}

impl Tree for ViewTree {
    fn item(&self, ino: Ino) -> Option<Item> {
        self.0.item(ino).cloned()
    }

    fn generated(&self, ino: Ino) -> Option<Arc<[u8]>> {
        match self.0.node(ino)?.kind {
            NodeKind::Sha1Sums => self.0.sha1sums(ino),
            _ => None,
        }
    }

    fn exists(&self, ino: Ino) -> bool {
        self.0.node(ino).is_some()
    }

    fn is_dir(&self, ino: Ino) -> bool {
        self.0.node(ino).is_some_and(|n| n.kind == NodeKind::Dir)
    }
}
