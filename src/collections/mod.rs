//! Collections: the declarations (`decls/`), the types they are written in (`decl.rs`), the
//! access seam (`access.rs`), hooks, and the one engine that serves them all (`engine/`).

pub mod access;
pub mod decl;
pub mod decls;
pub mod engine;
pub mod hooks;
pub mod openapi;
pub mod public_cache;
pub mod routes;

use std::collections::HashMap;

use decl::CollectionDecl;

/// All declarations, by slug.
pub struct Registry {
    by_slug: HashMap<&'static str, &'static CollectionDecl>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            by_slug: decls::ALL.iter().map(|d| (d.slug, *d)).collect(),
        }
    }
    pub fn get(&self, slug: &str) -> Option<&'static CollectionDecl> {
        self.by_slug.get(slug).copied()
    }
    pub fn all(&self) -> impl Iterator<Item = &'static CollectionDecl> + '_ {
        decls::ALL.iter().copied()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use decl::Kind;

    #[test]
    fn every_relation_points_at_a_declared_collection() {
        let r = Registry::new();
        assert_eq!(r.all().count(), 17);
        for d in r.all() {
            for f in d.fields {
                if let Some(t) = f.kind.relation_target() {
                    assert!(r.get(t).is_some(), "{}.{} → {t}", d.slug, f.name);
                }
                if !matches!(f.kind, Kind::Child(_)) {
                    assert!(!f.column.is_empty(), "{}.{} has no column", d.slug, f.name);
                }
            }
        }
    }
}
