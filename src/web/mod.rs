//! Server-rendered pages (askama). For now the home page: what this server is, whether its
//! database is ready, and the collections it serves — derived from the declarations.

use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::app::AppState;
use crate::collections::decl::AdminGroup;

/// Stylesheet embedded in the binary (one file to deploy).
const APP_CSS: &str = include_str!("../../static/app.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/static/app.css", get(stylesheet))
}

struct CollectionRow {
    slug: &'static str,
    plural: &'static str,
    fields: usize,
    tenant_scoped: bool,
}

struct Group {
    title: &'static str,
    collections: Vec<CollectionRow>,
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    version: &'static str,
    environment: &'static str,
    ready: bool,
    groups: Vec<Group>,
}

/// The admin navigation groups, in the seed guide's order and words.
pub const GROUPS: &[(AdminGroup, &str)] = &[
    (AdminGroup::GeoHierarchy, "Geo & Hierarchy"),
    (AdminGroup::Tenancy, "Tenancy"),
    (AdminGroup::Portals, "Portals"),
    (AdminGroup::UsersSecurity, "Users & Security"),
    (AdminGroup::Content, "Content"),
    (AdminGroup::ControlPlane, "Control Plane"),
    (AdminGroup::Audit, "Audit"),
];

async fn home(State(state): State<AppState>) -> Response {
    let ready = matches!(
        tokio::time::timeout(
            std::time::Duration::from_secs(2),
            crate::db::schema_state(&state.pool)
        )
        .await,
        Ok(Ok(crate::db::SchemaState::Current))
    );
    let groups = GROUPS
        .iter()
        .map(|(group, title)| Group {
            title,
            collections: state
                .registry
                .all()
                .filter(|d| d.group == *group)
                .map(|d| CollectionRow {
                    slug: d.slug,
                    plural: d.plural,
                    fields: d.fields.iter().filter(|f| f.readable()).count(),
                    tenant_scoped: d.tenant_column().is_some(),
                })
                .collect(),
        })
        .collect();
    let page = Home {
        version: env!("CARGO_PKG_VERSION"),
        environment: state.config.env.as_str(),
        ready,
        groups,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "home page rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.").into_response()
        }
    }
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        APP_CSS,
    )
}
