//! The module graph keeps one direction (go-containerregistry keeps a depcheck
//! test of the same kind): ARCHITECTURE.md lists the top-level modules of
//! `src/` from the bottom up, and a module may use only modules listed before
//! it. A total order cannot hold a cycle, so the graph stays acyclic, and the
//! document cannot drift from the code: a module missing from the list, or
//! listed but gone, fails too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The order from the fenced `text` block that follows the heading
/// "## Module order" in ARCHITECTURE.md: one line per level, lowest first;
/// modules on one line are peers and may not use each other.
fn documented_order() -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md exists");
    let section = doc
        .split("## Module order")
        .nth(1)
        .expect("ARCHITECTURE.md has a \"## Module order\" section");
    let block = section
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section holds a ```text block");
    block
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect()
        })
        .collect()
}

/// The top-level modules of `src/` (files and directories, without main and lib).
fn modules(src: &Path) -> BTreeSet<String> {
    std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = if p.is_dir() {
                p.file_name()?.to_str()?.to_string()
            } else {
                p.file_name()?.to_str()?.strip_suffix(".rs")?.to_string()
            };
            (name != "main" && name != "lib").then_some(name)
        })
        .collect()
}

/// Source text without line comments and without what follows `#[cfg(test)]`
/// (unit tests may reach anywhere).
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segment after every `crate::` in `code`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        // `lambda_img::crate::` does not occur; a preceding identifier char
        // means another word that ends in "crate" (none in this code base).
        let rest = &code[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// module → the other top-level modules it uses.
fn graph(src: &Path, mods: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(src) {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_str().unwrap();
        let module = first.strip_suffix(".rs").unwrap_or(first).to_string();
        if !mods.contains(&module) {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(path).unwrap());
        let used: Vec<String> = crate_paths(&code)
            .into_iter()
            .filter(|m| mods.contains(m) && *m != module)
            .collect();
        edges.entry(module).or_default().extend(used);
    }
    edges
}

#[test]
fn modules_use_only_modules_below_them_in_architecture_md() {
    let src = root().join("src");
    let mods = modules(&src);
    let order = documented_order();
    let mut rank = BTreeMap::new();
    for (level, line) in order.iter().enumerate() {
        for m in line {
            assert!(
                rank.insert(m.clone(), level).is_none(),
                "ARCHITECTURE.md lists `{m}` twice"
            );
        }
    }
    let listed: BTreeSet<String> = rank.keys().cloned().collect();
    let missing: Vec<_> = mods.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&mods).collect();
    assert!(
        missing.is_empty() && gone.is_empty(),
        "ARCHITECTURE.md's module order and src/ disagree: not listed {missing:?}, listed but not in src/ {gone:?}"
    );
    let mut upward = Vec::new();
    for (module, used) in graph(&src, &mods) {
        for target in used {
            if rank[&target] >= rank[&module] {
                upward.push(format!("{module} uses {target}"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "modules use modules at or above their own level in ARCHITECTURE.md:\n  {}",
        upward.join("\n  ")
    );
}

#[test]
fn the_scanner_finds_crate_paths_and_skips_comments_and_unit_tests() {
    let code = code_of(
        "use crate::image::Digest;\n// crate::cli in a comment\nfn f() { crate::report::x(); }\n#[cfg(test)]\nmod tests { use crate::cli; }\n",
    );
    let found: Vec<String> = crate_paths(&code).into_iter().collect();
    assert_eq!(found, ["image", "report"]);
}
