//! A query plan: which resources a principal may act on, as a condition over resource
//! attributes. It comes from the PDP's `/api/plan/resources` or from the built-in evaluator,
//! and becomes a SQL row filter (collections/access.rs).

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    Always,
    Never,
    Cond(Expr),
}

/// A condition over `R.attr.<name>`, in the operators the PDP's plans use.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// The attribute equals one of the values (`eq` is a one-element `in`).
    In(String, Vec<Value>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
}

/// The resource attributes a plan may name; anything else in a PDP plan is refused (deny).
pub const ATTRIBUTES: &[&str] = &["tenantId", "storeId", "status", "ownerId", "public"];

impl Plan {
    /// Whether a resource with these attributes is inside the plan. A missing attribute
    /// makes its comparison false, as a CEL error makes a Cerbos condition not match.
    pub fn admits(&self, attrs: &Map<String, Value>) -> bool {
        match self {
            Plan::Always => true,
            Plan::Never => false,
            Plan::Cond(e) => e.eval(attrs) == Some(true),
        }
    }

    /// The decision for a resource with these attributes when the plan settles it: `None` when
    /// a condition names an attribute the resource does not carry (then only a check can say,
    /// as a CEL error inside a DENY rule's condition is not the same as false).
    pub fn decides(&self, attrs: &Map<String, Value>) -> Option<bool> {
        match self {
            Plan::Always => Some(true),
            Plan::Never => Some(false),
            Plan::Cond(e) => e.eval(attrs),
        }
    }

    /// A plan from the PDP's JSON `filter`; `None` when it uses anything we do not map.
    pub fn from_pdp(filter: &Value) -> Option<Plan> {
        match filter.get("kind")?.as_str()? {
            "KIND_ALWAYS_ALLOWED" => Some(Plan::Always),
            "KIND_ALWAYS_DENIED" => Some(Plan::Never),
            "KIND_CONDITIONAL" => Some(Plan::Cond(Expr::from_pdp(filter.get("condition")?)?)),
            _ => None,
        }
    }
}

impl Expr {
    /// `None` = unknown (a missing attribute), which counts as false at the top.
    fn eval(&self, attrs: &Map<String, Value>) -> Option<bool> {
        match self {
            Expr::In(attr, values) => attrs.get(attr).map(|v| values.contains(v)),
            Expr::And(items) => {
                let mut unknown = false;
                for i in items {
                    match i.eval(attrs) {
                        Some(false) => return Some(false),
                        None => unknown = true,
                        Some(true) => {}
                    }
                }
                (!unknown).then_some(true)
            }
            Expr::Or(items) => {
                let mut unknown = false;
                for i in items {
                    match i.eval(attrs) {
                        Some(true) => return Some(true),
                        None => unknown = true,
                        Some(false) => {}
                    }
                }
                (!unknown).then_some(false)
            }
            Expr::Not(e) => e.eval(attrs).map(|b| !b),
        }
    }

    fn from_pdp(node: &Value) -> Option<Expr> {
        let e = node.get("expression")?;
        let op = e.get("operator")?.as_str()?;
        let operands = e.get("operands")?.as_array()?;
        match op {
            "and" | "or" => {
                let items = operands.iter().map(Expr::from_pdp).collect::<Option<Vec<_>>>()?;
                Some(if op == "and" {
                    Expr::And(items)
                } else {
                    Expr::Or(items)
                })
            }
            "not" => Some(Expr::Not(Box::new(Expr::from_pdp(operands.first()?)?))),
            "eq" | "in" => {
                let (mut attr, mut value) = (None, None);
                for o in operands {
                    if let Some(var) = o.get("variable").and_then(Value::as_str) {
                        attr = Some(attribute(var)?);
                    } else if let Some(v) = o.get("value") {
                        value = Some(v.clone());
                    } else {
                        return None;
                    }
                }
                let (attr, value) = (attr?, value?);
                let values = match (op, value) {
                    ("in", Value::Array(list)) => list,
                    ("eq", v) => vec![v],
                    _ => return None,
                };
                Some(Expr::In(attr, values))
            }
            _ => None,
        }
    }
}

/// `request.resource.attr.tenantId` (or `R.attr.tenantId`) → `tenantId`, allow-listed.
fn attribute(variable: &str) -> Option<String> {
    let name = variable
        .strip_prefix("request.resource.attr.")
        .or_else(|| variable.strip_prefix("R.attr."))?;
    ATTRIBUTES.contains(&name).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_specs_plan_example_maps_and_evaluates() {
        let filter = json!({"kind":"KIND_CONDITIONAL","condition":{"expression":{"operator":"or","operands":[
          {"expression":{"operator":"eq","operands":[{"variable":"request.resource.attr.tenantId"},{"value":"t1"}]}},
          {"expression":{"operator":"and","operands":[
            {"expression":{"operator":"eq","operands":[{"variable":"request.resource.attr.status"},{"value":"draft"}]}},
            {"expression":{"operator":"in","operands":[{"variable":"request.resource.attr.ownerId"},{"value":["u-ed","u-x"]}]}}]}}]}}});
        let plan = Plan::from_pdp(&filter).expect("maps");
        let attrs = |v: Value| v.as_object().unwrap().clone();
        assert!(plan.admits(&attrs(json!({"tenantId": "t1"}))));
        assert!(plan.admits(&attrs(
            json!({"tenantId": "t2", "status": "draft", "ownerId": "u-x"})
        )));
        assert!(!plan.admits(&attrs(
            json!({"tenantId": "t2", "status": "published", "ownerId": "u-x"})
        )));
        assert!(!plan.admits(&attrs(json!({"status": "draft"}))));
    }

    #[test]
    fn a_plan_settles_only_what_its_attributes_decide() {
        let attrs = |v: Value| v.as_object().unwrap().clone();
        let new_in = |t: &str| attrs(json!({"tenantId": t}));
        assert_eq!(Plan::Always.decides(&new_in("t1")), Some(true));
        assert_eq!(Plan::Never.decides(&new_in("t1")), Some(false));
        let tenant_admin = Plan::Cond(Expr::In("tenantId".into(), vec![json!("t1")]));
        assert_eq!(tenant_admin.decides(&new_in("t1")), Some(true));
        assert_eq!(tenant_admin.decides(&new_in("t2")), Some(false));
        // A condition on an attribute a new document does not carry: only a check can say.
        let editor = Plan::Cond(Expr::And(vec![
            Expr::In("tenantId".into(), vec![json!("t1")]),
            Expr::Not(Box::new(Expr::In("status".into(), vec![json!("published")]))),
        ]));
        assert_eq!(editor.decides(&new_in("t1")), None);
        assert_eq!(
            editor.decides(&new_in("t2")),
            Some(false),
            "false whatever the status"
        );
    }

    #[test]
    fn unknown_variables_and_operators_are_refused() {
        let var = json!({"kind":"KIND_CONDITIONAL","condition":{"expression":{"operator":"eq","operands":[
            {"variable":"request.resource.attr.secret"},{"value":"x"}]}}});
        assert_eq!(Plan::from_pdp(&var), None);
        let op = json!({"kind":"KIND_CONDITIONAL","condition":{"expression":{"operator":"lt","operands":[
            {"variable":"request.resource.attr.tenantId"},{"value":"x"}]}}});
        assert_eq!(Plan::from_pdp(&op), None);
        assert_eq!(
            Plan::from_pdp(&json!({"kind":"KIND_ALWAYS_DENIED"})),
            Some(Plan::Never)
        );
    }
}
