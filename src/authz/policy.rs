//! The Cerbos policy files (`policies/`), read for the built-in evaluator.
//!
//! Only the subset CityOS policies use is accepted: resource policies (version "default") and
//! derived roles, rules with `actions`/`effect`/`roles`/`derivedRoles`/`condition`, conditions
//! made of `expr`, `all`, `any`, `none`. Anything else fails at load time, so the fallback can
//! never silently decide differently from the PDP on a feature it does not know.

use std::collections::HashMap;
use std::sync::Arc;

use cel::Program;
use serde::Deserialize;

/// The policy files compiled into the binary (see build.rs): (file name, YAML).
pub const EMBEDDED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/policies.rs"));

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

fn invalid(file: &str, message: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        file: file.to_string(),
        message: message.into(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyFile {
    api_version: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    resource_policy: Option<ResourcePolicyYaml>,
    #[serde(default)]
    derived_roles: Option<DerivedRolesYaml>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ResourcePolicyYaml {
    version: String,
    resource: String,
    #[serde(default)]
    import_derived_roles: Vec<String>,
    rules: Vec<RuleYaml>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleYaml {
    actions: Vec<String>,
    effect: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    derived_roles: Vec<String>,
    #[serde(default)]
    condition: Option<ConditionYaml>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DerivedRolesYaml {
    name: String,
    definitions: Vec<DerivedRoleYaml>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DerivedRoleYaml {
    name: String,
    parent_roles: Vec<String>,
    #[serde(default)]
    condition: Option<ConditionYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionYaml {
    #[serde(rename = "match")]
    match_: MatchYaml,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchYaml {
    #[serde(default)]
    expr: Option<String>,
    #[serde(default)]
    all: Option<OfYaml>,
    #[serde(default)]
    any: Option<OfYaml>,
    #[serde(default)]
    none: Option<OfYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OfYaml {
    of: Vec<MatchYaml>,
}

/// A parsed condition.
#[derive(Debug)]
pub enum Match {
    Expr { source: String, program: Program },
    All(Vec<Match>),
    Any(Vec<Match>),
    None(Vec<Match>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug)]
pub struct Rule {
    pub actions: Vec<String>,
    pub effect: Effect,
    pub roles: Vec<String>,
    pub derived_roles: Vec<String>,
    pub condition: Option<Match>,
}

impl Rule {
    pub fn covers(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == "*" || a == action)
    }
}

#[derive(Debug)]
pub struct DerivedRole {
    pub parent_roles: Vec<String>,
    pub condition: Option<Match>,
}

/// A resource policy with its derived roles resolved.
#[derive(Debug)]
pub struct ResourcePolicy {
    pub rules: Vec<Rule>,
    pub derived: HashMap<String, Arc<DerivedRole>>,
}

/// Every resource policy, by resource kind.
#[derive(Debug, Default)]
pub struct PolicySet {
    pub resources: HashMap<String, ResourcePolicy>,
}

impl PolicySet {
    /// The policies compiled into the binary.
    pub fn embedded() -> Result<PolicySet, PolicyError> {
        PolicySet::parse(EMBEDDED.iter().map(|(n, s)| (n.to_string(), s.to_string())))
    }

    /// Every `*.yaml` of a directory (tests and `*_test.yaml` skipped, as the PDP does).
    pub fn from_dir(dir: &std::path::Path) -> Result<PolicySet, PolicyError> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| invalid(&dir.display().to_string(), e.to_string()))?;
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !(name.ends_with(".yaml") || name.ends_with(".yml")) || name.contains("_test.") {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).map_err(|e| invalid(&name, e.to_string()))?;
            files.push((name, text));
        }
        PolicySet::parse(files.into_iter())
    }

    fn parse(files: impl Iterator<Item = (String, String)>) -> Result<PolicySet, PolicyError> {
        let mut derived_sets: HashMap<String, HashMap<String, Arc<DerivedRole>>> = HashMap::new();
        let mut resources = Vec::new();
        for (file, text) in files {
            let doc: PolicyFile =
                serde_yaml_ng::from_str(&text).map_err(|e| invalid(&file, e.to_string()))?;
            let _ = doc.description;
            if doc.api_version != "api.cerbos.dev/v1" {
                return Err(invalid(&file, "apiVersion must be api.cerbos.dev/v1"));
            }
            match (doc.resource_policy, doc.derived_roles) {
                (Some(rp), None) => resources.push((file, rp)),
                (None, Some(dr)) => {
                    let mut defs = HashMap::new();
                    for d in dr.definitions {
                        let condition = d.condition.map(|c| compile(&file, c.match_)).transpose()?;
                        let role = DerivedRole {
                            parent_roles: d.parent_roles,
                            condition,
                        };
                        defs.insert(d.name, Arc::new(role));
                    }
                    derived_sets.insert(dr.name, defs);
                }
                _ => return Err(invalid(&file, "one resourcePolicy or derivedRoles per file")),
            }
        }
        let mut set = PolicySet::default();
        for (file, rp) in resources {
            if rp.version != "default" {
                return Err(invalid(&file, "only version \"default\" is supported"));
            }
            let mut derived = HashMap::new();
            for import in &rp.import_derived_roles {
                let defs = derived_sets
                    .get(import)
                    .ok_or_else(|| invalid(&file, format!("unknown derived roles {import:?}")))?;
                for (name, role) in defs {
                    derived.insert(name.clone(), Arc::clone(role));
                }
            }
            let mut rules = Vec::new();
            for r in rp.rules {
                let _ = r.name;
                let effect = match r.effect.as_str() {
                    "EFFECT_ALLOW" => Effect::Allow,
                    "EFFECT_DENY" => Effect::Deny,
                    other => return Err(invalid(&file, format!("unknown effect {other}"))),
                };
                for d in &r.derived_roles {
                    if !derived.contains_key(d) {
                        return Err(invalid(&file, format!("derived role {d:?} is not imported")));
                    }
                }
                if r.roles.is_empty() && r.derived_roles.is_empty() {
                    return Err(invalid(&file, "a rule needs roles or derivedRoles"));
                }
                rules.push(Rule {
                    actions: r.actions,
                    effect,
                    roles: r.roles,
                    derived_roles: r.derived_roles,
                    condition: r.condition.map(|c| compile(&file, c.match_)).transpose()?,
                });
            }
            set.resources
                .insert(rp.resource, ResourcePolicy { rules, derived });
        }
        Ok(set)
    }
}

fn compile(file: &str, m: MatchYaml) -> Result<Match, PolicyError> {
    let parts = [
        m.expr.is_some(),
        m.all.is_some(),
        m.any.is_some(),
        m.none.is_some(),
    ];
    if parts.iter().filter(|p| **p).count() != 1 {
        return Err(invalid(file, "a match needs exactly one of expr, all, any, none"));
    }
    let list = |of: OfYaml| {
        of.of
            .into_iter()
            .map(|m| compile(file, m))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(if let Some(source) = m.expr {
        let program =
            Program::compile(&source).map_err(|e| invalid(file, format!("expression {source:?}: {e}")))?;
        Match::Expr { source, program }
    } else if let Some(of) = m.all {
        Match::All(list(of)?)
    } else if let Some(of) = m.any {
        Match::Any(list(of)?)
    } else {
        Match::None(list(m.none.expect("checked above"))?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_policies_load_and_cover_every_collection() {
        let set = PolicySet::embedded().expect("policies load");
        for decl in crate::collections::decls::ALL {
            assert!(
                set.resources.contains_key(decl.slug),
                "no policy for {}",
                decl.slug
            );
        }
    }

    #[test]
    fn unknown_features_are_refused() {
        let yaml = "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  version: default\n  resource: x\n  \
                    rules:\n    - actions: [read]\n      effect: EFFECT_ALLOW\n      roles: [user]\n      output: {}\n";
        let err = PolicySet::parse([("x.yaml".to_string(), yaml.to_string())].into_iter()).unwrap_err();
        assert!(err.to_string().contains("x.yaml"), "{err}");
    }
}
