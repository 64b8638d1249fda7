//! The import graph of each crate's files, and no import cycle between files of different
//! folders (DESIGN.md §3: modules with one-way dependencies).
//!
//! For each crate of the workspace (`micloudfs` in `src/`, the emulator in `micloud-sim/src/`,
//! library and binary) this parses every file with `syn`, follows the module tree (`mod`
//! items, file or inline), and resolves every path that starts with `crate::`, `super::` or
//! `self::` (in `use` trees, in code, in attributes such as clap's `value_parser`, and inside
//! macro calls) to the file that defines the module it names: the longest prefix of the path
//! that is a module wins, so `crate::view::naming::safe_name` is an edge to
//! `view/naming.rs`, and a name re-exported by a `mod.rs` or the crate root is an edge to
//! that file. Items under `#[cfg(test)]` are left out: a test may reach across layers.
//!
//! The check fails on a strongly connected component (a set of files that import each other,
//! directly or around a loop) that holds files of more than one folder, and prints it: files
//! of one folder may lean on each other, but between folders dependencies go one way. The
//! emulator is held to more: no cycle between any two of its files.
//! `scripts/import-graph.sh` prints the whole graph (this test run with `--nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// A module path from the crate root (`["view", "naming"]`).
type ModPath = Vec<String>;

/// One crate: its modules and the files they live in.
struct Crate {
    name: &'static str,
    /// Module path → the file that holds it (inline modules map to their file).
    modules: BTreeMap<ModPath, PathBuf>,
    /// Files in the order they were found.
    files: Vec<(PathBuf, ModPath)>,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .is_ok_and(|l| l.tokens.to_string().trim() == "test")
    })
}

fn parse(path: &Path) -> syn::File {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()))
}

/// The folder where the children of `file`'s module live.
fn child_dir(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    match file.file_name().and_then(|n| n.to_str()) {
        Some("lib.rs" | "main.rs" | "mod.rs") => dir,
        _ => dir.join(file.file_stem().unwrap_or_default()),
    }
}

/// Walks the module tree from `root`.
fn load_crate(name: &'static str, root: &Path) -> Crate {
    let mut c = Crate {
        name,
        modules: BTreeMap::new(),
        files: Vec::new(),
    };
    let mut todo = vec![(root.to_path_buf(), ModPath::new())];
    while let Some((file, path)) = todo.pop() {
        c.modules.insert(path.clone(), file.clone());
        c.files.push((file.clone(), path.clone()));
        let ast = parse(&file);
        collect_mods(
            &ast.items,
            &file,
            &child_dir(&file),
            &path,
            &mut c,
            &mut todo,
        );
    }
    c
}

fn collect_mods(
    items: &[syn::Item],
    file: &Path,
    dir: &Path,
    path: &ModPath,
    c: &mut Crate,
    todo: &mut Vec<(PathBuf, ModPath)>,
) {
    for item in items {
        let syn::Item::Mod(m) = item else { continue };
        if is_cfg_test(&m.attrs) {
            continue;
        }
        let mut sub = path.clone();
        sub.push(m.ident.to_string());
        match &m.content {
            Some((_, inner)) => {
                c.modules.insert(sub.clone(), file.to_path_buf());
                let inner_dir = dir.join(m.ident.to_string());
                collect_mods(inner, file, &inner_dir, &sub, c, todo);
            }
            None => {
                let flat = dir.join(format!("{}.rs", m.ident));
                let nested = dir.join(m.ident.to_string()).join("mod.rs");
                let found = if flat.exists() { flat } else { nested };
                assert!(found.exists(), "module {sub:?} of {} has no file", c.name);
                todo.push((found, sub));
            }
        }
    }
}

/// Collects the paths of one file that name a module of the crate (`crate::`, `super::`,
/// `self::`, or a child module by its name), with the module each is written in.
struct Paths<'c> {
    modules: &'c BTreeMap<ModPath, PathBuf>,
    module: ModPath,
    found: Vec<(ModPath, Vec<String>)>,
}

impl Paths<'_> {
    fn add(&mut self, mut segs: Vec<String>) {
        let Some(first) = segs.first() else { return };
        if !matches!(first.as_str(), "crate" | "super" | "self") {
            let mut child = self.module.clone();
            child.push(first.clone());
            if segs.len() < 2 || !self.modules.contains_key(&child) {
                return;
            }
            segs.insert(0, "self".to_string());
        }
        self.found.push((self.module.clone(), segs));
    }

    /// Paths spelled in a token stream (macro bodies, attributes).
    fn scan(&mut self, tokens: TokenStream) {
        let toks: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < toks.len() {
            match &toks[i] {
                TokenTree::Group(g) => self.scan(g.stream()),
                TokenTree::Ident(id) => {
                    let mut segs = vec![id.to_string()];
                    let mut j = i + 1;
                    while let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(next)),
                    ) = (toks.get(j), toks.get(j + 1), toks.get(j + 2))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segs.push(next.to_string());
                        j += 3;
                    }
                    if segs.len() > 1 {
                        self.add(segs);
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }

    fn use_tree(&mut self, prefix: &[String], tree: &syn::UseTree) {
        let with = |s: String| {
            let mut p = prefix.to_vec();
            p.push(s);
            p
        };
        match tree {
            syn::UseTree::Path(p) => self.use_tree(&with(p.ident.to_string()), &p.tree),
            syn::UseTree::Name(n) => self.add(with(n.ident.to_string())),
            syn::UseTree::Rename(r) => self.add(with(r.ident.to_string())),
            syn::UseTree::Glob(_) => self.add(prefix.to_vec()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Paths<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if is_cfg_test(&m.attrs) || m.content.is_none() {
            return;
        }
        self.module.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.module.pop();
    }

    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Macro(i) => &i.attrs,
            _ => &Vec::new(),
        };
        if !is_cfg_test(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_cfg_test(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&[], &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.add(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.scan(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }

    /// `pub(super)` and `pub(in path)` name a module, but depend on nothing.
    fn visit_vis_restricted(&mut self, _: &'ast syn::VisRestricted) {}

    fn visit_attribute(&mut self, a: &'ast syn::Attribute) {
        if let syn::Meta::List(l) = &a.meta {
            self.scan(l.tokens.clone());
        }
    }
}

/// The module a path written in `module` names: the longest prefix that is a module.
fn resolve(c: &Crate, module: &ModPath, segs: &[String]) -> Option<ModPath> {
    let (mut base, rest) = match segs[0].as_str() {
        "crate" => (ModPath::new(), &segs[1..]),
        "self" => (module.clone(), &segs[1..]),
        _ => {
            let mut base = module.clone();
            let mut i = 0;
            while segs.get(i).map(String::as_str) == Some("super") {
                base.pop()?;
                i += 1;
            }
            (base, &segs[i..])
        }
    };
    let mut best = c.modules.contains_key(&base).then(|| base.clone());
    for s in rest {
        base.push(s.clone());
        if c.modules.contains_key(&base) {
            best = Some(base.clone());
        } else {
            break;
        }
    }
    best
}

/// File → the files it imports.
fn graph(c: &Crate) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut g: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (file, module) in &c.files {
        let mut paths = Paths {
            modules: &c.modules,
            module: module.clone(),
            found: Vec::new(),
        };
        paths.visit_file(&parse(file));
        let edges = g.entry(file.clone()).or_default();
        for (written_in, segs) in paths.found {
            let Some(target) = resolve(c, &written_in, &segs) else {
                continue;
            };
            let to = &c.modules[&target];
            if to != file {
                edges.insert(to.clone());
            }
        }
    }
    g
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(g: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct Tarjan<'a> {
        g: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        out: Vec<Vec<PathBuf>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a PathBuf) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.g.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    scc.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    scc.sort();
                    self.out.push(scc);
                }
            }
        }
    }
    let mut t = Tarjan {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out
}

#[test]
fn no_import_cycle_between_files_of_different_folders() {
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The emulator is held to more: no cycle at all, even inside a folder.
    let crates = [
        ("micloudfs (lib)", "src/lib.rs", false),
        ("micloudfs (bin)", "src/main.rs", false),
        ("micloud-sim (lib)", "micloud-sim/src/lib.rs", true),
        ("micloud-sim (bin)", "micloud-sim/src/main.rs", true),
    ];
    let mut bad = Vec::new();
    for (name, root, strict) in crates {
        let c = load_crate(name, &top.join(root));
        let g = graph(&c);
        let short = |p: &Path| p.strip_prefix(top).unwrap_or(p).display().to_string();
        println!("{name}: {} files", g.len());
        for (file, deps) in &g {
            let deps: Vec<String> = deps.iter().map(|d| short(d)).collect();
            println!("  {} -> {}", short(file), deps.join(", "));
        }
        for scc in cycles(&g) {
            let folders: BTreeSet<&Path> = scc.iter().filter_map(|f| f.parent()).collect();
            let files: Vec<String> = scc.iter().map(|f| short(f)).collect();
            if folders.len() > 1 || strict {
                bad.push(format!("{name}: {}", files.join(" <-> ")));
            } else {
                println!("  (within one folder: {})", files.join(" <-> "));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "files of different folders import each other (make the dependency one-way: move \
         the shared part down into a file both can use):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_graph_sees_use_trees_inline_paths_macros_and_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\npub use a::X;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "pub mod c;\npub struct X;\n").unwrap();
    std::fs::write(
        src.join("a/c.rs"),
        "use crate::{b::{self, Y}};\n\
         #[derive(Clone)]\n\
         pub struct Z(#[allow(unused)] u8);\n\
         fn f() { let _ = format!(\"{}\", super::super::b::g()); }\n\
         #[cfg(test)]\nmod tests { use crate::X; }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("b.rs"),
        "pub struct Y;\npub fn g() -> u8 { 1 }\n\
         #[cfg(test)]\nfn t() { crate::a::c::f(); }\n",
    )
    .unwrap();
    let c = load_crate("probe", &src.join("lib.rs"));
    let g = graph(&c);
    let deps = |f: &str| -> Vec<String> {
        g[&src.join(f)]
            .iter()
            .map(|p| p.strip_prefix(src).unwrap().display().to_string())
            .collect()
    };
    assert_eq!(deps("lib.rs"), ["a/mod.rs"]);
    assert_eq!(
        deps("a/c.rs"),
        ["b.rs"],
        "the test module's import is left out"
    );
    assert!(deps("b.rs").is_empty(), "a cfg(test) function is left out");
    assert!(cycles(&g).is_empty());
    // A loop between folders is found.
    std::fs::write(
        src.join("b.rs"),
        "pub struct Y;\npub fn g() -> u8 { crate::a::c::h() }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("a/c.rs"),
        "use crate::b::Y;\npub fn h() -> u8 { 2 }\n",
    )
    .unwrap();
    let g = graph(&load_crate("probe", &src.join("lib.rs")));
    assert_eq!(cycles(&g), vec![vec![src.join("a/c.rs"), src.join("b.rs")]]);
}
