//! Cerbos: the policies pass their own tests, the real PDP and the built-in evaluator agree on
//! every decision of a matrix, and the server keeps deciding (or refuses, fail-closed) when the
//! PDP goes away, then uses it again when it is back.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cityos::authz::evaluate;
use cityos::authz::pdp::Pdp;
use cityos::authz::policy::PolicySet;
use common::cerbos::{self, PrivatePdp};
use common::*;
use serde_json::{json, Value};

#[test]
fn the_policy_tests_pass_under_cerbos_compile() {
    let out = std::process::Command::new(cerbos::binary())
        .args(["compile", "--no-color"])
        .arg(cerbos::policies())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("OK"), "{stdout}");
}

const ACTIONS: [&str; 4] = ["read", "create", "update", "delete"];
const T1: &str = "50000000-0000-4000-8000-000000000001";
const T2: &str = "50000000-0000-4000-8000-000000000002";
const S1: &str = "60000000-0000-4000-8000-000000000001";

fn user(
    id: &str,
    global: &[&str],
    memberships: &[(&str, &str)],
    stores: &[&str],
    context: Option<&str>,
) -> Value {
    let mut by_role: BTreeMap<&str, Vec<&str>> = cityos::auth::principal::MEMBERSHIP_ROLES
        .iter()
        .map(|r| (*r, Vec::new()))
        .collect();
    let mut tenants = Vec::new();
    for (t, role) in memberships {
        by_role.get_mut(role).unwrap().push(t);
        if !tenants.contains(t) {
            tenants.push(*t);
        }
    }
    let mut roles: Vec<&str> = global.to_vec();
    roles.push("user");
    let mut attr = json!({"tenantIds": tenants, "tenantIdsByRole": by_role, "storeIds": stores});
    attr["contextTenantId"] = json!(context.unwrap_or(""));
    json!({"id": id, "roles": roles, "attr": attr})
}

/// Every role of the catalogue, inside and outside the resolved tenant, keys and anonymous.
fn principals() -> Vec<(String, Value)> {
    let mut out = vec![
        (
            "super_admin".into(),
            user("u-root", &["super_admin"], &[], &[], None),
        ),
        (
            "super_admin@t1".into(),
            user("u-root", &["super_admin"], &[], &[], Some(T1)),
        ),
        (
            "platform_operator".into(),
            user("u-op", &["platform_operator"], &[], &[], None),
        ),
        ("no-membership@t1".into(), user("u-none", &[], &[], &[], Some(T1))),
        (
            "t2-admin@t1".into(),
            user("u-mal", &[], &[(T2, "tenant_admin")], &[], Some(T1)),
        ),
        (
            "store_manager-s1".into(),
            user("u-sam", &[], &[(T1, "store_manager")], &[S1], None),
        ),
        (
            "anonymous@t1".into(),
            json!({"id": "anonymous", "roles": ["anonymous"], "attr": {"tenantIds": [], "tenantIdsByRole": {}, "storeIds": [], "contextTenantId": T1}}),
        ),
        (
            "anonymous".into(),
            json!({"id": "anonymous", "roles": ["anonymous"], "attr": {"tenantIds": [], "tenantIdsByRole": {}, "storeIds": [], "contextTenantId": ""}}),
        ),
        (
            "tenant-key-t1".into(),
            json!({"id": "apikey:k1", "roles": ["api_key"], "attr": {"tenantIds": [T1], "tenantIdsByRole": {}, "storeIds": [], "platform": false}}),
        ),
        (
            "platform-key".into(),
            json!({"id": "apikey:k2", "roles": ["api_key"], "attr": {"tenantIds": [], "tenantIdsByRole": {}, "storeIds": [], "platform": true}}),
        ),
    ];
    for role in cityos::auth::principal::MEMBERSHIP_ROLES {
        out.push((
            format!("{role}-t1"),
            user(&format!("u-{role}"), &[], &[(T1, role)], &[], None),
        ));
    }
    out
}

/// Documents of every collection: own and other tenant, each status, public rows.
fn resources() -> Vec<Value> {
    let mut out = Vec::new();
    let mut n = 0;
    let mut push = |kind: &str, attr: Value| {
        n += 1;
        out.push(json!({"kind": kind, "id": format!("r{n}"), "attr": attr}));
    };
    for decl in cityos::collections::decls::ALL {
        let kind = decl.slug;
        match kind {
            "countries" | "scopes" | "categories" | "subcategories" => push(kind, json!({})),
            "users" => {
                for t in [T1, T2] {
                    push(kind, json!({"tenantId": t, "ownerId": "u-other"}));
                }
                push(kind, json!({"tenantId": T2, "ownerId": "u-sam"}));
            }
            "stores" => {
                for (t, s) in [(T1, S1), (T1, "60000000-0000-4000-8000-000000000002"), (T2, S1)] {
                    push(kind, json!({"tenantId": t, "storeId": s}));
                }
            }
            "pages" | "posts" | "product-content" => {
                for t in [T1, T2] {
                    for status in ["draft", "published"] {
                        push(kind, json!({"tenantId": t, "status": status}));
                    }
                }
            }
            _ => {
                for t in [T1, T2] {
                    push(kind, json!({"tenantId": t, "public": false}));
                }
                push(kind, json!({"public": true}));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_pdp_and_the_builtin_evaluator_agree_on_every_decision() {
    let url = cerbos::shared_url();
    let pdp = Pdp::new(&url, None, Duration::from_secs(10));
    let set = PolicySet::from_dir(&cerbos::policies()).unwrap();
    let resources = resources();
    let (mut cases, mut allowed, mut plans) = (0, 0, 0);
    let mut disagreements = Vec::new();
    for (name, principal) in principals() {
        for action in ACTIONS {
            // One batched check per principal and action: every resource at once.
            let remote = pdp
                .check(&principal, &resources, action)
                .await
                .expect("PDP check");
            let mut kinds: BTreeMap<&str, (cityos::authz::Plan, cityos::authz::Plan)> = BTreeMap::new();
            for (r, remote) in resources.iter().zip(remote) {
                let local = evaluate::check(&set, &principal, r, action);
                cases += 1;
                allowed += usize::from(remote);
                if local != remote {
                    disagreements.push(format!(
                        "check {name} {action} {r}: pdp {remote}, builtin {local}"
                    ));
                }
                // The plans (list filters) must admit exactly what the checks allow.
                let kind = r["kind"].as_str().unwrap();
                if !kinds.contains_key(kind) {
                    let remote_plan = pdp.plan(&principal, kind, action).await.expect("PDP plan");
                    let local_plan = evaluate::plan(&set, &principal, kind, action);
                    plans += 1;
                    kinds.insert(kind, (remote_plan, local_plan));
                }
                let (remote_plan, local_plan) = &kinds[kind];
                let attrs = r["attr"].as_object().unwrap();
                for (which, plan) in [("pdp", remote_plan), ("builtin", local_plan)] {
                    if plan.admits(attrs) != remote {
                        disagreements.push(format!(
                            "{which} plan {name} {action} {r}: {plan:?}, check {remote}"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(cases >= 500, "{cases} cases");
    // A matrix of all-deny or all-allow would prove nothing.
    assert!(
        allowed > cases / 10 && allowed < cases * 9 / 10,
        "{allowed} of {cases} allowed"
    );
    assert!(plans >= 300, "{plans} plans");
}

/// Pages of both demo tenants as a tenant admin of Fashionista, on Fashionista's host.
async fn pages_seen(app: &TestApp, token: &str) -> (u16, Value) {
    let res = app
        .client
        .get(app.url("/api/pages?limit=100&depth=0"))
        .header("Authorization", format!("JWT {token}"))
        .header("X-Tenant", "fashionista")
        .send()
        .await
        .unwrap();
    json(res).await
}

async fn decide_through_an_outage(fail_closed: bool) {
    let mut pdp = PrivatePdp::start();
    let url = fresh_database().await;
    let mode = if fail_closed { "fail-closed" } else { "fallback" };
    let app = TestApp::spawn_on(
        &url,
        &[
            ("CERBOS_PDP_URL", &pdp.url()),
            ("CERBOS_FAILURE_MODE", mode),
            ("CERBOS_PLAN_CACHE_MS", "0"),
            ("CERBOS_REQUEST_TIMEOUT_MS", "500"),
        ],
    )
    .await;
    let token = app
        .member("outage@example.com", FASHIONISTA, &["content_editor"])
        .await;
    let (status, before) = pages_seen(&app, &token).await;
    assert_eq!(status, 200, "{before}");
    let (_, ready) = json(app.get("/api/ready").await).await;
    assert_eq!(ready["authz"]["engine"], "cerbos", "{ready}");

    pdp.stop();
    for _ in 0..5 {
        let (status, body) = pages_seen(&app, &token).await;
        if fail_closed {
            assert_eq!(status, 503, "{body}");
            assert!(
                body["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("Authorization"),
                "{body}"
            );
        } else {
            assert_eq!(status, 200, "{body}");
            assert_eq!(
                body["totalDocs"], before["totalDocs"],
                "the fallback decides as the PDP did"
            );
        }
        // Writes too: an editor may create a page in its tenant, never in another.
        let res = app
            .send(
                reqwest::Method::POST,
                "/api/pages",
                Some(&token),
                Some(json!({"title": "Outage", "slug": format!("outage-{}", uuid::Uuid::new_v4()), "tenant": RIYADH_EATS})),
            )
            .await;
        let expected = if fail_closed { 503 } else { 400 };
        assert_eq!(res.status().as_u16(), expected);
    }
    let (ready_status, ready) = json(app.get("/api/ready").await).await;
    assert_eq!(ready["authz"]["pdp"], "down", "{ready}");
    assert_eq!(ready_status, if fail_closed { 503 } else { 200 }, "{ready}");

    pdp.restart();
    let (_, ready) = json(app.get("/api/ready").await).await;
    assert_eq!(ready["authz"]["engine"], "cerbos", "{ready}");
    let (status, after) = pages_seen(&app, &token).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["totalDocs"], before["totalDocs"]);
    app.stop().await;
}

#[tokio::test]
async fn a_stopped_pdp_falls_back_to_the_builtin_evaluator_and_is_used_again_when_back() {
    decide_through_an_outage(false).await;
}

#[tokio::test]
async fn fail_closed_refuses_with_503_while_the_pdp_is_down() {
    decide_through_an_outage(true).await;
}
