//! Authorization: the Cerbos policies in `policies/`, decided by the PDP when one is configured
//! and by the built-in evaluator of the same files otherwise or when the PDP cannot be reached.
//!
//! Lists, counts, by-id reads, updates, deletes and population ask for a *plan* (one call per
//! collection and action, turned into a SQL row filter); creates and tenant changes ask for a
//! *check* of the concrete document (one batched call). After a PDP failure the authorizer
//! stays on the fallback for a short while instead of waiting for a timeout on every request,
//! then tries the PDP again; each switch is logged and shown by `/api/ready`.

pub mod evaluate;
pub mod pdp;
pub mod plan;
pub mod policy;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::auth::principal::{Principal, MEMBERSHIP_ROLES};
use crate::collections::access::TenantContext;
use crate::config::CerbosConfig;
use crate::http::error::ApiError;
use pdp::Pdp;
pub use plan::{Expr, Plan};
use policy::{PolicyError, PolicySet};

/// How long requests skip a PDP that just failed.
const RETRY_AFTER: Duration = Duration::from_secs(2);
const CACHE_LIMIT: usize = 10_000;

pub struct Authorizer {
    policies: PolicySet,
    pdp: Option<Pdp>,
    fail_closed: bool,
    /// Milliseconds since `started` until which the PDP is skipped.
    skip_until_ms: AtomicU64,
    pdp_up: AtomicBool,
    started: Instant,
    plan_ttl: Duration,
    plans: Mutex<HashMap<u64, (Instant, Plan)>>,
}

impl Authorizer {
    pub fn new(config: &CerbosConfig) -> Result<Authorizer, PolicyError> {
        let policies = match &config.policy_dir {
            Some(dir) => PolicySet::from_dir(dir)?,
            None => PolicySet::embedded()?,
        };
        let timeout = Duration::from_millis(config.request_timeout_ms.max(1));
        Ok(Authorizer {
            policies,
            pdp: config
                .pdp_url
                .as_deref()
                .map(|u| Pdp::new(u, config.api_key.clone(), timeout)),
            fail_closed: config.fail_closed,
            skip_until_ms: AtomicU64::new(0),
            pdp_up: AtomicBool::new(true),
            started: Instant::now(),
            plan_ttl: Duration::from_millis(config.plan_cache_ms),
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// The built-in evaluator only (tools and unit tests).
    pub fn builtin() -> Authorizer {
        Authorizer::new(&CerbosConfig::default()).expect("embedded policies load")
    }

    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// The PDP to ask now, if any (none while it is being skipped after a failure).
    fn pdp_now(&self) -> Option<&Pdp> {
        let pdp = self.pdp.as_ref()?;
        let now = self.started.elapsed().as_millis() as u64;
        (now >= self.skip_until_ms.load(Ordering::Relaxed)).then_some(pdp)
    }

    fn pdp_ok(&self) {
        if !self.pdp_up.swap(true, Ordering::Relaxed) {
            tracing::warn!(target: "authz", "Cerbos PDP reachable again; decisions come from the PDP");
        }
    }

    fn pdp_failed(&self, error: &pdp::PdpError) -> Result<(), ApiError> {
        let until = self.started.elapsed() + RETRY_AFTER;
        self.skip_until_ms
            .store(until.as_millis() as u64, Ordering::Relaxed);
        if self.pdp_up.swap(false, Ordering::Relaxed) {
            let using = if self.fail_closed {
                "refusing requests (fail-closed)"
            } else {
                "using the built-in evaluator"
            };
            tracing::warn!(target: "authz", %error, "Cerbos PDP failed; {using}");
        }
        self.unavailable()
    }

    fn unavailable(&self) -> Result<(), ApiError> {
        if self.fail_closed {
            Err(ApiError::Unavailable(
                "Authorization service unavailable, try again shortly.".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Which `kind` resources `principal` may do `action` on.
    pub async fn plan(&self, principal: &Value, kind: &str, action: &str) -> Result<Plan, ApiError> {
        let Some(pdp) = self.pdp.as_ref() else {
            return Ok(evaluate::plan(&self.policies, principal, kind, action));
        };
        let key = cache_key(principal, kind, action);
        if !self.plan_ttl.is_zero() {
            if let Some((at, plan)) = self.plans.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
                if at.elapsed() < self.plan_ttl {
                    return Ok(plan.clone());
                }
            }
        }
        if self.pdp_now().is_some() {
            match pdp.plan(principal, kind, action).await {
                Ok(plan) => {
                    self.pdp_ok();
                    if !self.plan_ttl.is_zero() {
                        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
                        if plans.len() >= CACHE_LIMIT {
                            plans.clear();
                        }
                        plans.insert(key, (Instant::now(), plan.clone()));
                    }
                    return Ok(plan);
                }
                Err(e) => self.pdp_failed(&e)?,
            }
        } else {
            self.unavailable()?;
        }
        Ok(evaluate::plan(&self.policies, principal, kind, action))
    }

    /// Whether `principal` may do `action` on each resource (`{kind, id, attr}`), in one call.
    pub async fn check(
        &self,
        principal: &Value,
        resources: &[Value],
        action: &str,
    ) -> Result<Vec<bool>, ApiError> {
        if resources.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(pdp) = self.pdp_now() {
            match pdp.check(principal, resources, action).await {
                Ok(v) => {
                    self.pdp_ok();
                    return Ok(v);
                }
                Err(e) => self.pdp_failed(&e)?,
            }
        } else if self.pdp.is_some() {
            self.unavailable()?;
        }
        Ok(resources
            .iter()
            .map(|r| evaluate::check(&self.policies, principal, r, action))
            .collect())
    }

    /// For `/api/ready`: where decisions come from right now.
    pub async fn status(&self) -> Value {
        let mode = if self.fail_closed {
            "fail-closed"
        } else {
            "fallback"
        };
        match &self.pdp {
            None => json!({"engine": "builtin", "pdp": "not configured"}),
            Some(pdp) => {
                let up = pdp.healthy().await;
                if up && self.pdp_now().is_none() {
                    // Healthy again: stop skipping it.
                    self.skip_until_ms.store(0, Ordering::Relaxed);
                }
                json!({
                    "engine": if up { "cerbos" } else if self.fail_closed { "none" } else { "builtin" },
                    "pdp": if up { "up" } else { "down" },
                    "onFailure": mode,
                })
            }
        }
    }
}

fn cache_key(principal: &Value, kind: &str, action: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    principal.to_string().hash(&mut h);
    kind.hash(&mut h);
    action.hash(&mut h);
    h.finish()
}

/// The Cerbos principal of a caller in a request's tenant context (spec §1.1).
///
/// A member browsing one of its tenants acts inside that tenant only: its memberships are
/// narrowed to the resolved tenant, so a tenant admin of A and B on A's domain is A's admin.
pub fn principal(p: &Principal, ctx: &TenantContext) -> Value {
    let context = ctx.tenant_id.filter(|t| !t.is_nil());
    let mut attr = Map::new();
    let (id, roles) = match p {
        Principal::Anonymous => {
            attr.insert("tenantIds".into(), json!([]));
            attr.insert("tenantIdsByRole".into(), json!({}));
            attr.insert("storeIds".into(), json!([]));
            ("anonymous".to_string(), vec!["anonymous".to_string()])
        }
        Principal::ApiKey(k) => {
            attr.insert(
                "tenantIds".into(),
                json!(k.tenant_id.into_iter().collect::<Vec<_>>()),
            );
            attr.insert("tenantIdsByRole".into(), json!({}));
            attr.insert("storeIds".into(), json!([]));
            attr.insert("platform".into(), json!(k.tenant_id.is_none()));
            (format!("apikey:{}", k.id), vec!["api_key".to_string()])
        }
        Principal::User(u) => {
            let inside = |t: &uuid::Uuid| context.is_none_or(|c| c == *t);
            let mut tenants: Vec<String> = Vec::new();
            let mut stores: Vec<String> = Vec::new();
            let mut by_role: Map<String, Value> = MEMBERSHIP_ROLES
                .iter()
                .map(|r| (r.to_string(), json!([])))
                .collect();
            for m in u.memberships.iter().filter(|m| inside(&m.tenant_id)) {
                let t = m.tenant_id.to_string();
                if !tenants.contains(&t) {
                    tenants.push(t.clone());
                }
                if let Some(s) = m.store_id {
                    stores.push(s.to_string());
                }
                for r in &m.roles {
                    if let Some(Value::Array(list)) = by_role.get_mut(r) {
                        if !list.contains(&Value::String(t.clone())) {
                            list.push(Value::String(t.clone()));
                        }
                    }
                }
            }
            attr.insert("tenantIds".into(), json!(tenants));
            attr.insert("tenantIdsByRole".into(), Value::Object(by_role));
            attr.insert("storeIds".into(), json!(stores));
            let mut roles = u.global_roles.clone();
            roles.push("user".into());
            (u.id.to_string(), roles)
        }
    };
    // Always present: "" (no tenant) makes storefront rules match nothing rather than fail,
    // so a list outside any tenant is an empty page, not a 403 (as Payload's `where` access).
    let context_id = context.map(|t| t.to_string()).unwrap_or_default();
    attr.insert("contextTenantId".into(), json!(context_id));
    json!({"id": id, "roles": roles, "attr": attr})
}
