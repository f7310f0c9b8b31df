//! The admin UI at `/admin`: server-rendered pages (askama) generated from the collection
//! declarations, calling the same engine functions as the REST API, so validation,
//! authorization (Cerbos plans and checks), row-level security, hooks and audit are the same.
//!
//! - `session`: sign-in (the REST login's core), sign-out, tenant and language switches
//! - `views`: dashboard, list, create/edit, delete, bulk actions, control-plane actions
//! - `forms`: declaration → fields, form body → the engine's JSON
//! - `csrf`, `i18n`, `html`: tokens, the two languages, escaping

pub mod csrf;
pub mod forms;
pub mod html;
pub mod i18n;
pub mod labels;
pub mod multipart;
pub mod oidc;
pub mod seams;
pub mod session;
pub mod views;

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::principal::{Principal, UserPrincipal};
use crate::collections::access::{authorize, Action, TenantContext};
use crate::collections::decl::AdminGroup;
use crate::http::extract::CallContext;
use i18n::Lang;

const ADMIN_CSS: &str = include_str!("../../static/admin.css");
const HTMX_JS: &str = include_str!("../../static/htmx.min.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(views::dashboard))
        .route("/admin/", get(views::dashboard))
        .route("/admin/login", get(session::login_form).post(session::login))
        .route("/admin/login/keycloak", get(oidc::start))
        .route("/admin/login/callback", get(oidc::callback))
        .route("/admin/logout", post(session::logout))
        .route("/admin/tenant", post(session::select_tenant))
        .route("/admin/lang", get(session::switch_lang))
        .route("/admin/options/{slug}", get(views::picker_search))
        .route("/admin/c/{slug}", get(views::list))
        .route("/admin/c/{slug}/bulk", post(views::bulk))
        .route("/admin/c/{slug}/new", get(views::new_form).post(views::create))
        .route("/admin/c/{slug}/{id}", get(views::edit_form).post(views::update))
        .route("/admin/c/{slug}/{id}/delete", post(views::delete))
        .route("/admin/c/{slug}/{id}/action/{action}", post(views::doc_action))
        .route(
            "/static/admin.css",
            get(|| async { static_file("text/css; charset=utf-8", ADMIN_CSS) }),
        )
        .route(
            "/static/htmx.min.js",
            get(|| async { static_file("text/javascript; charset=utf-8", HTMX_JS) }),
        )
        // Pages are 15–30 KB of HTML and htmx is 51 KB: gzip for browsers that ask (a page
        // with its CSS and JS, ~85 KB, becomes ~25 KB). The REST API is left to the proxy: its
        // cached storefront reads would pay the compression on every request.
        .layer(tower_http::compression::CompressionLayer::new())
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::ETAG, concat!("\"", env!("CARGO_PKG_VERSION"), "\"")),
        ],
        body,
    )
        .into_response()
}

/// Roles that open the admin (any one, in any tenant), besides `super_admin`.
pub const ADMIN_ROLES: &[&str] = &[
    "tenant_admin",
    "store_manager",
    "content_editor",
    "vendor_owner",
    "viewer",
];

/// Whether a principal may use the admin at all (what `/api/access` calls `canAccessAdmin`).
pub fn can_access_admin(p: &Principal) -> bool {
    p.is_super_admin() || !p.tenants_with(ADMIN_ROLES).is_empty()
}

/// A signed-in admin user with the request's context, language and CSRF token. Anonymous
/// callers are sent to the sign-in page; users without an admin role get the no-access page.
pub struct AdminCtx {
    pub call: CallContext,
    pub user: UserPrincipal,
    pub lang: Lang,
    pub csrf: String,
}

impl FromRequestParts<AppState> for AdminCtx {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let lang = Lang::from_headers(&parts.headers);
        let call = match CallContext::from_request_parts(parts, state).await {
            Ok(c) => c,
            Err(_) => return Err(Redirect::to("/admin/login").into_response()),
        };
        let Principal::User(user) = &call.principal else {
            return Err(Redirect::to("/admin/login").into_response());
        };
        let user = user.clone();
        let mut call = call;
        if let Some(t) = member_selection(&parts.headers, &call, &user) {
            call.tenant = TenantContext {
                tenant_id: Some(t),
                store_id: None,
                source: "cookie",
            };
        }
        let csrf = csrf::token(state.config.secrets.payload_secret.expose(), &session_key(&user));
        if !can_access_admin(&call.principal) {
            let mut c = Chrome::bare(lang, &csrf, Some(user.email.clone()));
            c.name = user.name.clone();
            let page = views::MessagePage {
                c,
                title: lang.t("no_access_title").into(),
                message: lang.t("no_access").into(),
            };
            return Err(render(StatusCode::FORBIDDEN, &page));
        }
        Ok(AdminCtx {
            call,
            user,
            lang,
            csrf,
        })
    }
}

/// The admin's own tenant choice of a member of several tenants (`cityos-admin-tenant`, sent
/// to `/admin` only). The REST resolver honours the selection cookie for super admins alone
/// (the spec); inside the admin a member may narrow its view to one of its own tenants, which
/// never widens what it can reach: a tenant it does not belong to is ignored.
fn member_selection(
    headers: &axum::http::HeaderMap,
    call: &CallContext,
    user: &UserPrincipal,
) -> Option<Uuid> {
    if call.tenant.tenant_id.is_some() || call.principal.is_super_admin() {
        return None;
    }
    let chosen =
        crate::http::extract::cookie(headers, ADMIN_TENANT_COOKIE).and_then(|v| Uuid::parse_str(&v).ok())?;
    user.memberships
        .iter()
        .any(|m| m.tenant_id == chosen)
        .then_some(chosen)
}

/// The cookie holding a member's tenant choice in the admin.
pub const ADMIN_TENANT_COOKIE: &str = "cityos-admin-tenant";

/// What a CSRF token is bound to: the session (or the user for session-less tokens).
fn session_key(user: &UserPrincipal) -> String {
    user.session_id.unwrap_or(user.id).to_string()
}

impl AdminCtx {
    /// Checks a form's `_csrf` field.
    pub fn csrf_ok(&self, state: &AppState, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| {
            csrf::verify(
                state.config.secrets.payload_secret.expose(),
                &session_key(&self.user),
                p,
            )
        })
    }

    /// The page chrome: navigation (collections the caller may read), tenants, language.
    pub async fn chrome(&self, state: &AppState) -> Chrome {
        let asks = state.registry.all().map(|d| {
            authorize(
                &state.authz,
                &self.call.principal,
                Action::Read,
                d,
                &self.call.tenant,
            )
        });
        let decisions = futures_util::future::join_all(asks).await;
        let readable: Vec<&'static str> = state
            .registry
            .all()
            .zip(decisions)
            .filter(|(_, d)| matches!(d, Ok(d) if !d.is_denied()))
            .map(|(d, _)| d.slug)
            .collect();
        let nav = GROUPS
            .iter()
            .map(|(group, key)| NavGroup {
                title: self.lang.t(key),
                items: state
                    .registry
                    .all()
                    .filter(|d| d.group == *group && readable.contains(&d.slug))
                    .map(|d| NavItem {
                        slug: d.slug,
                        label: labels::label(self.lang, d.plural),
                    })
                    .collect(),
            })
            .filter(|g| !g.items.is_empty())
            .collect();
        let super_admin = self.call.principal.is_super_admin();
        let tenants = self.tenant_choices(state, super_admin).await;
        // The resolved tenant, else a member's only tenant (where its reads and writes go).
        let current = self.call.tenant.tenant_id.or_else(|| {
            let mut ids: Vec<Uuid> = self.user.memberships.iter().map(|m| m.tenant_id).collect();
            ids.dedup();
            (ids.len() == 1 && !super_admin).then(|| ids[0])
        });
        let current_tenant = current
            .and_then(|id| tenants.iter().find(|t| t.id == id.to_string()))
            .map(|t| t.name.clone())
            .unwrap_or_else(|| {
                if super_admin {
                    self.lang.t("all_tenants").to_string()
                } else {
                    self.lang.t("none").to_string()
                }
            });
        Chrome {
            lang: self.lang,
            csrf: self.csrf.clone(),
            email: Some(self.user.email.clone()),
            name: self.user.name.clone(),
            nav,
            tenants,
            current_tenant_id: current.map(|t| t.to_string()).unwrap_or_default(),
            current_tenant,
            super_admin,
        }
    }

    async fn tenant_choices(&self, state: &AppState, super_admin: bool) -> Vec<TenantChoice> {
        let rows: Result<Vec<(Uuid, String)>, sqlx::Error> = if super_admin {
            sqlx::query_as("SELECT id, name FROM tenants ORDER BY name LIMIT 500")
                .fetch_all(&state.pool)
                .await
        } else {
            let ids: Vec<Uuid> = self.user.memberships.iter().map(|m| m.tenant_id).collect();
            sqlx::query_as("SELECT id, name FROM tenants WHERE id = ANY($1) ORDER BY name")
                .bind(ids)
                .fetch_all(&state.pool)
                .await
        };
        match rows {
            Ok(rows) => rows
                .into_iter()
                .map(|(id, name)| TenantChoice {
                    id: id.to_string(),
                    name,
                })
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "admin: tenant choices");
                Vec::new()
            }
        }
    }
}

/// Navigation groups in the seed guide's order, with their dictionary keys.
const GROUPS: &[(AdminGroup, &str)] = &[
    (AdminGroup::GeoHierarchy, "g_geo"),
    (AdminGroup::Tenancy, "g_tenancy"),
    (AdminGroup::Portals, "g_portals"),
    (AdminGroup::UsersSecurity, "g_users"),
    (AdminGroup::Content, "g_content"),
    (AdminGroup::ControlPlane, "g_control"),
    (AdminGroup::Audit, "g_audit"),
];

pub struct NavGroup {
    pub title: &'static str,
    pub items: Vec<NavItem>,
}

pub struct NavItem {
    pub slug: &'static str,
    pub label: &'static str,
}

pub struct TenantChoice {
    pub id: String,
    pub name: String,
}

/// Everything the layout shows around a page.
pub struct Chrome {
    pub lang: Lang,
    pub csrf: String,
    /// The signed-in user (none on the sign-in page).
    pub email: Option<String>,
    pub name: Option<String>,
    pub nav: Vec<NavGroup>,
    pub tenants: Vec<TenantChoice>,
    pub current_tenant_id: String,
    pub current_tenant: String,
    pub super_admin: bool,
}

impl Chrome {
    /// A layout without navigation (sign-in, no access).
    pub fn bare(lang: Lang, csrf: &str, email: Option<String>) -> Chrome {
        Chrome {
            lang,
            csrf: csrf.to_string(),
            email,
            name: None,
            nav: Vec::new(),
            tenants: Vec::new(),
            current_tenant_id: String::new(),
            current_tenant: String::new(),
            super_admin: false,
        }
    }
    pub fn t(&self, key: &str) -> &'static str {
        self.lang.t(key)
    }
    pub fn code(&self) -> &'static str {
        self.lang.code()
    }
    pub fn dir(&self) -> &'static str {
        self.lang.dir()
    }
    pub fn other_code(&self) -> &'static str {
        self.lang.other().code()
    }
    pub fn other_name(&self) -> &'static str {
        self.lang.other().name()
    }
}

/// Renders a page; the admin's pages are per-user and never cached.
pub fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => {
            let mut res = (status, Html(html)).into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "admin page rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.").into_response()
        }
    }
}
