//! The source's import graph has no circle: for every file under `src/`, the modules its
//! `use crate::…`, `use super::…` and `use self::…` paths name, and no file reached back from
//! a module it imports. A circle hides a file that two others each assume is below them, and
//! makes a change to one rule a change to several files.
//!
//! An edge goes from a file's module to the longest module path that a `use` path names, so
//! `use super::key::read::Choice` is an edge to `tenants/key/read`, not to `tenants/key`. A
//! module's own children, unit tests (`tests.rs`, `tests/`, `#[cfg(test)] mod tests { … }`)
//! and the crate root are left out.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

type Module = Vec<String>;

/// Every module under `src/`, by its path (`["cache", "flight"]`), with its source.
fn modules() -> BTreeMap<Module, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Module, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            if name == "tests" {
                continue;
            }
            let mut module = prefix.to_vec();
            if path.is_dir() {
                module.push(name);
                walk(&path, &module, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                if name != "mod" && name != "lib" {
                    module.push(name);
                }
                out.insert(module, fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &[],
        &mut out,
    );
    out
}

/// The paths that `source` names, without its unit tests and comments: those of its `use`
/// declarations, and those written in its code (`crate::metrics::dropped(..)`).
fn uses(source: &str) -> Vec<String> {
    let source = match source.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &source[..at],
        None => source,
    };
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in source.lines() {
        let line = line.split("//").next().unwrap().trim();
        if current.is_none() {
            let rest = line
                .strip_prefix("pub(crate) ")
                .or_else(|| line.strip_prefix("pub(super) "))
                .or_else(|| line.strip_prefix("pub "))
                .unwrap_or(line);
            match rest.strip_prefix("use ") {
                Some(rest) => current = Some(format!("{rest} ")),
                None => out.extend(paths_in(line)),
            }
        } else if let Some(tree) = &mut current {
            tree.push_str(line);
            tree.push(' ');
        }
        if let Some(tree) = current.take_if(|c| c.trim_end().ends_with(';')) {
            out.extend(expand(tree.trim_end().trim_end_matches(';')));
        }
    }
    out
}

/// The `crate::…` and `super::…` paths written in a line of code.
fn paths_in(line: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    for root in ["crate::", "super::"] {
        for (at, _) in line.match_indices(root) {
            if line[..at].ends_with(|c: char| ident(c) || c == ':') {
                continue;
            }
            let path: String = line[at..]
                .chars()
                .take_while(|&c| ident(c) || c == ':')
                .collect();
            out.push(path.trim_end_matches(':').to_owned());
        }
    }
    out
}

/// The paths of a use tree: `a::{b, c::{d, e as f}}` is `a::b`, `a::c::d` and `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    // Renames dropped (`e as f` is `e`), then the spaces.
    let mut words = tree.split_whitespace();
    let mut tree = String::new();
    while let Some(word) = words.next() {
        if word == "as" {
            let renamed = words.next().unwrap_or_default();
            tree.extend(renamed.chars().filter(|c| matches!(c, ',' | '}')));
        } else {
            tree.push_str(word);
        }
    }
    let Some(open) = tree.find('{') else {
        return vec![tree.trim_end_matches("::self").to_owned()];
    };
    let prefix = &tree[..open];
    let body = &tree[open + 1..tree.len() - 1];
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&body[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(expand)
        .map(|p| match p.as_str() {
            "self" => prefix.trim_end_matches("::").to_owned(),
            _ => format!("{prefix}{p}"),
        })
        .collect()
}

/// The module that `path`, written in `module`, names: the longest module path it starts with.
fn target(modules: &BTreeMap<Module, String>, module: &[String], path: &str) -> Option<Module> {
    let mut segments = path.split("::").peekable();
    let mut full: Module = match *segments.peek()? {
        "crate" => {
            segments.next();
            Vec::new()
        }
        "self" => {
            segments.next();
            module.to_vec()
        }
        "super" => {
            let mut base = module.to_vec();
            while segments.next_if_eq(&"super").is_some() {
                base.pop();
            }
            base
        }
        _ => return None,
    };
    full.extend(segments.map(str::to_owned));
    (0..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|m| modules.contains_key(m))
}

/// The strongly connected components of more than one module (Tarjan's algorithm).
fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Search<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, (usize, usize)>,
        stack: Vec<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    impl<'a> Search<'a> {
        fn visit(&mut self, v: &'a Module) -> usize {
            let n = self.index.len();
            self.index.insert(v, (n, n));
            self.stack.push(v);
            let mut low = n;
            for w in self.edges.get(v).into_iter().flatten() {
                match self.index.get(w) {
                    None => low = low.min(self.visit(w)),
                    Some(&(i, _)) if self.stack.contains(&w) => low = low.min(i),
                    Some(_) => {}
                }
            }
            self.index.insert(v, (n, low));
            if low == n {
                let at = self.stack.iter().rposition(|m| *m == v).unwrap();
                let component: Vec<Module> = self.stack.drain(at..).map(|m| m.to_vec()).collect();
                if component.len() > 1 {
                    self.out.push(component);
                }
            }
            low
        }
    }
    let mut search = Search {
        edges,
        index: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !search.index.contains_key(v) {
            search.visit(v);
        }
    }
    search.out
}

#[test]
fn the_import_graph_has_no_circle() {
    let modules = modules();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, source) in &modules {
        for path in uses(source) {
            let Some(to) = target(&modules, module, &path) else {
                continue;
            };
            // Itself, its own children and the crate root are not dependencies up or down.
            if to.is_empty() || to.starts_with(module) {
                continue;
            }
            edges.entry(module.clone()).or_default().insert(to);
        }
    }
    assert!(modules.len() > 50, "{} modules read", modules.len());
    assert!(
        edges.values().map(BTreeSet::len).sum::<usize>() > 200,
        "too few imports read: the reader is broken"
    );
    let found = circles(&edges);
    let show: Vec<String> = found
        .iter()
        .map(|c| {
            let names: Vec<String> = c.iter().map(|m| m.join("/")).collect();
            names.join(" ↔ ")
        })
        .collect();
    assert!(found.is_empty(), "import circles: {show:#?}");
}

/// The reader sees a circle where there is one.
#[test]
fn a_circle_is_found() {
    let m = |s: &str| -> Module { s.split('/').map(str::to_owned).collect() };
    let edges = BTreeMap::from([
        (m("a"), BTreeSet::from([m("b")])),
        (m("b"), BTreeSet::from([m("c")])),
        (m("c"), BTreeSet::from([m("a")])),
        (m("d"), BTreeSet::from([m("a")])),
    ]);
    let found = circles(&edges);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].len(), 3);
    assert_eq!(
        expand("super::{key::read::{Choice, Written as W}, ready::Ready, self}"),
        [
            "super::key::read::Choice",
            "super::key::read::Written",
            "super::ready::Ready",
            "super"
        ]
    );
    assert_eq!(
        paths_in("let id = crate::cache::config::next_id(); super::flight::register(x);"),
        ["crate::cache::config::next_id", "super::flight::register"]
    );
    let source = "use crate::{\n    a::B,\n    c::{self, D as E},\n};\nfn f() { crate::g::h(); }\n";
    assert_eq!(
        uses(source),
        ["crate::a::B", "crate::c", "crate::c::D", "crate::g::h"]
    );
}
