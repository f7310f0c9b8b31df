//! The built-in evaluator of the policy files: decisions when the PDP cannot be reached.
//!
//! Checks run the conditions with the CEL interpreter (the `cel` crate), with `P`, `R` and
//! `request` bound as Cerbos binds them. Plans evaluate the same conditions partially: the
//! principal is known, the resource is not, so `R.attr.x in P.attr.list` becomes
//! `x IN (…)` and constant parts fold away. Cerbos semantics kept: a rule matches when the
//! principal holds one of its roles or derived roles and its condition holds; any DENY
//! wins over ALLOW; nothing matching is a DENY; an evaluation error is "no match".

use std::borrow::Cow;
use std::collections::HashMap;

use cel::common::ast::{Expr as Ast, LiteralValue};
use cel::IdedExpr;
use serde_json::{json, Value};

use super::plan::{Expr, Plan, ATTRIBUTES};
use super::policy::{DerivedRole, Effect, Match, PolicySet, ResourcePolicy};

/// Whether `principal` may do `action` on `resource` (`{kind, id, attr}`).
pub fn check(set: &PolicySet, principal: &Value, resource: &Value, action: &str) -> bool {
    let Some(policy) = resource
        .get("kind")
        .and_then(Value::as_str)
        .and_then(|k| set.resources.get(k))
    else {
        return false;
    };
    let Ok(p) = cel::to_value(principal) else {
        return false;
    };
    let Ok(r) = cel::to_value(resource) else {
        return false;
    };
    let Ok(request) = cel::to_value(json!({"principal": principal, "resource": resource})) else {
        return false;
    };
    STDLIB.with(|root| {
        let mut ctx = root.new_inner_scope();
        ctx.add_variable_from_value("P", p);
        ctx.add_variable_from_value("R", r);
        ctx.add_variable_from_value("request", request);
        let holds = |m: &Match| matches_cel(m, &ctx);
        decide(policy, principal, action, |c| {
            if holds(c) {
                Tri::True
            } else {
                Tri::False
            }
        }) == Tri::True
    })
}

thread_local! {
    /// The CEL standard library, built once per thread: building it (hundreds of function
    /// overloads) cost more than the check itself. Each check binds its variables in a scope
    /// of its own on top.
    static STDLIB: cel::Context<'static, 'static> = cel::Context::default();
}

/// Which resources of `kind` `principal` may do `action` on.
pub fn plan(set: &PolicySet, principal: &Value, kind: &str, action: &str) -> Plan {
    let Some(policy) = set.resources.get(kind) else {
        return Plan::Never;
    };
    let env = Partial { principal, kind };
    match decide(policy, principal, action, |m| env.matches(m)) {
        Tri::True => Plan::Always,
        Tri::False | Tri::Err => Plan::Never,
        Tri::Cond(e) => Plan::Cond(e),
    }
}

/// Three-valued (plus residual) truth: the result of a condition with an unknown resource.
#[derive(Debug, Clone, PartialEq)]
enum Tri {
    True,
    False,
    Err,
    Cond(Expr),
}

impl Tri {
    fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::False, _) | (_, Tri::False) => Tri::False,
            (Tri::Err, _) | (_, Tri::Err) => Tri::Err,
            (Tri::True, x) | (x, Tri::True) => x,
            (Tri::Cond(a), Tri::Cond(b)) => Tri::Cond(Expr::And(vec![a, b])),
        }
    }
    /// `error || x` is `x` where it is true and an error (no match) where it is false: `x`.
    fn or(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::True, _) | (_, Tri::True) => Tri::True,
            (Tri::False | Tri::Err, x) | (x, Tri::False | Tri::Err) => x,
            (Tri::Cond(a), Tri::Cond(b)) => Tri::Cond(Expr::Or(vec![a, b])),
        }
    }
    fn not(self) -> Tri {
        match self {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Err => Tri::Err,
            Tri::Cond(e) => Tri::Cond(Expr::Not(Box::new(e))),
        }
    }
}

fn roles_of(principal: &Value) -> Vec<&str> {
    principal
        .get("roles")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The rule-combining algorithm, shared by checks and plans.
fn decide(
    policy: &ResourcePolicy,
    principal: &Value,
    action: &str,
    mut condition: impl FnMut(&Match) -> Tri,
) -> Tri {
    let roles = roles_of(principal);
    let has_role = |wanted: &[String]| wanted.iter().any(|w| w == "*" || roles.contains(&w.as_str()));
    let mut derived: HashMap<String, Tri> = HashMap::new();
    let mut activated = |name: &str, role: &DerivedRole, condition: &mut dyn FnMut(&Match) -> Tri| {
        if let Some(t) = derived.get(name) {
            return t.clone();
        }
        let t = if has_role(&role.parent_roles) {
            role.condition.as_ref().map_or(Tri::True, &mut *condition)
        } else {
            Tri::False
        };
        derived.insert(name.to_string(), t.clone());
        t
    };
    let (mut allow, mut deny) = (Tri::False, Tri::False);
    for rule in policy.rules.iter().filter(|r| r.covers(action)) {
        let mut who = if has_role(&rule.roles) {
            Tri::True
        } else {
            Tri::False
        };
        for d in &rule.derived_roles {
            if let Some(role) = policy.derived.get(d) {
                who = who.or(activated(d, role, &mut condition));
            }
        }
        let when = rule.condition.as_ref().map_or(Tri::True, &mut condition);
        let matched = who.and(when);
        match rule.effect {
            Effect::Allow => allow = allow.or(matched),
            Effect::Deny => deny = deny.or(matched),
        }
    }
    allow.and(deny.not())
}

fn matches_cel(m: &Match, ctx: &cel::Context) -> bool {
    match m {
        Match::Expr { program, .. } => matches!(program.execute(ctx), Ok(cel::Value::Bool(true))),
        Match::All(items) => items.iter().all(|m| matches_cel(m, ctx)),
        Match::Any(items) => items.iter().any(|m| matches_cel(m, ctx)),
        Match::None(items) => !items.iter().any(|m| matches_cel(m, ctx)),
    }
}

/// A partially evaluated value; known values borrow from the principal where they can (the
/// plan runs on every request: `P.attr.x` must not copy the principal).
#[derive(Debug, Clone)]
enum Pv<'a> {
    Known(Cow<'a, Value>),
    Request,
    Resource,
    ResourceAttrs,
    Attr(String),
    Bool(Tri),
}

struct Partial<'a> {
    principal: &'a Value,
    kind: &'a str,
}

impl<'p> Partial<'p> {
    fn matches(&self, m: &Match) -> Tri {
        match m {
            Match::Expr { program, .. } => truth(self.eval(program.expression())),
            Match::All(items) => items.iter().fold(Tri::True, |acc, m| acc.and(self.matches(m))),
            Match::Any(items) => items.iter().fold(Tri::False, |acc, m| acc.or(self.matches(m))),
            Match::None(items) => items
                .iter()
                .fold(Tri::False, |acc, m| acc.or(self.matches(m)))
                .not(),
        }
    }

    fn eval(&self, e: &IdedExpr) -> Pv<'p> {
        let err = Pv::Bool(Tri::Err);
        match &e.expr {
            Ast::Ident(name) => match name.as_str() {
                "P" => Pv::Known(Cow::Borrowed(self.principal)),
                "R" => Pv::Resource,
                "request" => Pv::Request,
                _ => err,
            },
            Ast::Literal(lit) => match literal(lit) {
                Some(v) => Pv::Known(Cow::Owned(v)),
                None => err,
            },
            Ast::List(list) => {
                let mut out = Vec::new();
                for el in &list.elements {
                    match self.eval(el) {
                        Pv::Known(v) => out.push(v.into_owned()),
                        _ => return err,
                    }
                }
                Pv::Known(Cow::Owned(Value::Array(out)))
            }
            Ast::Select(sel) => {
                let operand = self.eval(&sel.operand);
                let field = sel.field.as_str();
                match (operand, sel.test) {
                    (Pv::Known(Cow::Borrowed(Value::Object(map))), false) => {
                        map.get(field).map_or(err, |v| Pv::Known(Cow::Borrowed(v)))
                    }
                    (Pv::Known(Cow::Owned(Value::Object(mut map))), false) => {
                        map.remove(field).map_or(err, |v| Pv::Known(Cow::Owned(v)))
                    }
                    (Pv::Known(known), true) => match known.as_ref() {
                        Value::Object(map) => Pv::Known(Cow::Owned(Value::Bool(map.contains_key(field)))),
                        _ => err,
                    },
                    (Pv::Request, false) if field == "principal" => Pv::Known(Cow::Borrowed(self.principal)),
                    (Pv::Request, false) if field == "resource" => Pv::Resource,
                    (Pv::Resource, false) if field == "attr" => Pv::ResourceAttrs,
                    (Pv::Resource, false) if field == "kind" => Pv::Known(Cow::Owned(Value::from(self.kind))),
                    (Pv::ResourceAttrs, false) if ATTRIBUTES.contains(&field) => Pv::Attr(field.to_string()),
                    _ => err,
                }
            }
            Ast::Call(call) if call.target.is_none() => {
                let arg = |i: usize| call.args.get(i).map(|a| self.eval(a));
                match (call.func_name.as_str(), arg(0), arg(1)) {
                    ("_&&_", Some(a), Some(b)) => Pv::Bool(truth(a).and(truth(b))),
                    ("_||_", Some(a), Some(b)) => Pv::Bool(truth(a).or(truth(b))),
                    ("!_", Some(a), None) => Pv::Bool(truth(a).not()),
                    ("_==_", Some(a), Some(b)) => Pv::Bool(equals(a, b)),
                    ("_!=_", Some(a), Some(b)) => Pv::Bool(equals(a, b).not()),
                    ("@in", Some(a), Some(b)) => Pv::Bool(contains(a, b)),
                    _ => err,
                }
            }
            _ => err,
        }
    }
}

fn truth(v: Pv<'_>) -> Tri {
    match v {
        Pv::Bool(t) => t,
        Pv::Known(k) => match k.as_ref() {
            Value::Bool(true) => Tri::True,
            Value::Bool(false) => Tri::False,
            _ => Tri::Err,
        },
        _ => Tri::Err,
    }
}

fn known(b: bool) -> Tri {
    if b {
        Tri::True
    } else {
        Tri::False
    }
}

fn equals(a: Pv<'_>, b: Pv<'_>) -> Tri {
    match (a, b) {
        (Pv::Known(x), Pv::Known(y)) => known(x == y),
        (Pv::Attr(attr), Pv::Known(v)) | (Pv::Known(v), Pv::Attr(attr)) => {
            Tri::Cond(Expr::In(attr, vec![v.into_owned()]))
        }
        _ => Tri::Err,
    }
}

fn contains(needle: Pv<'_>, haystack: Pv<'_>) -> Tri {
    match (needle, haystack) {
        (Pv::Known(x), Pv::Known(h)) => match (x.as_ref(), h.as_ref()) {
            (x, Value::Array(list)) => known(list.contains(x)),
            (Value::String(k), Value::Object(map)) => known(map.contains_key(k)),
            _ => Tri::Err,
        },
        (Pv::Attr(attr), Pv::Known(h)) => match h.into_owned() {
            Value::Array(list) if list.is_empty() => Tri::False,
            Value::Array(list) => Tri::Cond(Expr::In(attr, list)),
            _ => Tri::Err,
        },
        _ => Tri::Err,
    }
}

fn literal(lit: &LiteralValue) -> Option<Value> {
    Some(match lit {
        LiteralValue::Boolean(b) => Value::Bool(*b.inner()),
        LiteralValue::String(s) => Value::String(s.inner().to_string()),
        LiteralValue::Int(i) => Value::from(*i.inner()),
        LiteralValue::Null => Value::Null,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> PolicySet {
        PolicySet::embedded().unwrap()
    }

    fn editor() -> Value {
        json!({"id": "u-ed", "roles": ["user"], "attr": {
            "tenantIds": ["t1"], "storeIds": [],
            "tenantIdsByRole": {"tenant_admin": [], "content_editor": ["t1"], "store_manager": [], "vendor_owner": []}}})
    }

    #[test]
    fn checks_follow_roles_tenants_and_status() {
        let set = set();
        let page =
            |t: &str, s: &str| json!({"kind": "pages", "id": "p", "attr": {"tenantId": t, "status": s}});
        assert!(check(&set, &editor(), &page("t1", "draft"), "update"));
        assert!(!check(&set, &editor(), &page("t1", "draft"), "delete"));
        assert!(!check(&set, &editor(), &page("t2", "published"), "read"));
        let shopper = json!({"id": "anonymous", "roles": ["anonymous"], "attr": {
            "tenantIds": [], "tenantIdsByRole": {}, "storeIds": [], "contextTenantId": "t2"}});
        assert!(check(&set, &shopper, &page("t2", "published"), "read"));
        assert!(!check(&set, &shopper, &page("t2", "draft"), "read"));
        assert!(!check(&set, &shopper, &page("t2", "published"), "update"));
        // Unknown kinds deny, as the PDP does.
        assert!(!check(
            &set,
            &editor(),
            &json!({"kind": "nope", "id": "x", "attr": {}}),
            "read"
        ));
    }

    #[test]
    fn plans_reduce_to_conditions_over_resource_attributes() {
        let set = set();
        let p = plan(&set, &editor(), "pages", "read");
        let Plan::Cond(e) = &p else { panic!("{p:?}") };
        let attrs = |v: Value| v.as_object().unwrap().clone();
        assert!(
            p.admits(&attrs(json!({"tenantId": "t1", "status": "draft"}))),
            "{e:?}"
        );
        assert!(!p.admits(&attrs(json!({"tenantId": "t2", "status": "draft"}))));
        assert_eq!(plan(&set, &editor(), "pages", "delete"), Plan::Never);
        let root = json!({"id": "r", "roles": ["user", "super_admin"], "attr": {"tenantIds": []}});
        assert_eq!(plan(&set, &root, "pages", "delete"), Plan::Always);
        assert_eq!(plan(&set, &root, "audit-logs", "delete"), Plan::Never);
    }
}
