//! `GET /api/openapi.json`: an OpenAPI 3.1 document derived from the declarations — every
//! collection route, its document schema, the list envelope and Payload's error shapes.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::app::AppState;
use crate::collections::decl::{ChildKind, CollectionDecl, Field, Kind, SubField, SubKind};
use crate::collections::Registry;

pub async fn handler(State(state): State<AppState>) -> Json<Value> {
    Json(document(&state.registry, &state.config.app_url))
}

fn component_name(decl: &CollectionDecl) -> String {
    decl.slug
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn nullable(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

fn sub_schema(sub: &SubField) -> Value {
    match sub.kind {
        SubKind::Text => json!({"type": ["string", "null"]}),
        SubKind::RichText => json!({"type": ["object", "null"]}),
        SubKind::Upload(_) => json!({"type": ["string", "null"], "format": "uuid"}),
        SubKind::Select(options) => {
            json!({"type": ["string", "null"], "enum": options.iter().map(|o| Value::from(*o)).chain([Value::Null]).collect::<Vec<_>>()})
        }
        SubKind::Rows(fields) => rows_schema(fields),
    }
}

fn rows_schema(fields: &[SubField]) -> Value {
    let mut props = Map::new();
    props.insert(
        "id".into(),
        json!({"type": "string", "pattern": "^[0-9a-f]{24}$"}),
    );
    for f in fields {
        props.insert(f.name.into(), sub_schema(f));
    }
    json!({"type": "array", "items": {"type": "object", "properties": props}})
}

/// The wire schema of one field (as read).
fn field_schema(field: &Field) -> Value {
    let s = match field.kind {
        Kind::Text | Kind::Textarea => {
            let mut s = json!({"type": "string"});
            if let Some(max) = field.max_len {
                s["maxLength"] = json!(max);
            }
            s
        }
        Kind::Email => json!({"type": "string", "format": "email"}),
        Kind::Int | Kind::BigInt => json!({"type": "integer"}),
        Kind::Numeric => json!({"type": "number"}),
        Kind::Checkbox => return json!({"type": "boolean"}),
        Kind::Select(options) => json!({"type": "string", "enum": options}),
        Kind::Date => json!({"type": "string", "format": "date-time"}),
        Kind::Relation(target) | Kind::Upload(target) => {
            return nullable(json!({"oneOf": [
                {"type": "string", "format": "uuid"},
                {"$ref": format!("#/components/schemas/{}", target_component(target))}
            ]}))
        }
        Kind::IdRef => json!({"type": "string", "format": "uuid"}),
        Kind::Json => return json!({}),
        Kind::RichText => json!({"type": "object"}),
        Kind::Point => json!({"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2,
            "description": "[longitude, latitude]"}),
        Kind::Vector => {
            json!({"type": "array", "items": {"type": "number"}, "minItems": 768, "maxItems": 768})
        }
        Kind::List { sub, options } => {
            let item = match options {
                Some(o) => json!({"type": "string", "enum": o}),
                None => json!({"type": "string"}),
            };
            return json!({"type": "array", "items": {"type": "object", "properties": {sub: item}, "required": [sub]}});
        }
        Kind::Rows(fields) => return rows_schema(fields),
        Kind::Blocks(blocks) => {
            let variants: Vec<Value> = blocks
                .iter()
                .map(|b| {
                    let mut props = Map::new();
                    props.insert("id".into(), json!({"type": "string"}));
                    props.insert("blockType".into(), json!({"const": b.slug}));
                    props.insert("blockName".into(), json!({"type": ["string", "null"]}));
                    for f in b.fields {
                        props.insert(f.name.into(), sub_schema(f));
                    }
                    json!({"type": "object", "properties": props, "required": ["blockType"]})
                })
                .collect();
            return json!({"type": "array", "items": {"oneOf": variants}});
        }
        Kind::Child(child) => {
            let mut props = Map::new();
            props.insert("id".into(), json!({"type": "string", "format": "uuid"}));
            for (wire, _, kind) in child.columns {
                let s = match kind {
                    ChildKind::Text | ChildKind::Select(_) => json!({"type": ["string", "null"]}),
                    ChildKind::Bool => json!({"type": "boolean"}),
                    ChildKind::Date => json!({"type": ["string", "null"], "format": "date-time"}),
                    ChildKind::Relation(_) => json!({"type": ["string", "object", "null"]}),
                    ChildKind::List(o) => {
                        json!({"type": "array", "items": {"type": "object", "properties": {"role": {"type": "string", "enum": o}}}})
                    }
                };
                props.insert(wire.to_string(), s);
            }
            return json!({"type": "array", "items": {"type": "object", "properties": props}});
        }
        Kind::Secret | Kind::Password => json!({"type": "string", "writeOnly": true}),
    };
    if field.required {
        s
    } else {
        nullable(s)
    }
}

fn target_component(slug: &str) -> String {
    slug.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Nests `seo.title` style names into object properties.
fn insert_path(props: &mut Map<String, Value>, name: &str, schema: Value) {
    match name.split_once('.') {
        None => {
            props.insert(name.to_string(), schema);
        }
        Some((head, rest)) => {
            let group = props
                .entry(head.to_string())
                .or_insert_with(|| json!({"type": "object", "properties": {}}));
            if let Some(inner) = group.get_mut("properties").and_then(Value::as_object_mut) {
                insert_path(inner, rest, schema);
            }
        }
    }
}

fn doc_schema(decl: &CollectionDecl) -> Value {
    let mut props = Map::new();
    props.insert("id".into(), json!({"type": "string", "format": "uuid"}));
    for f in decl.fields {
        if matches!(f.kind, Kind::Secret) {
            insert_path(
                &mut props,
                &crate::collections::engine::read::has_name(f.name),
                json!({"type": "boolean"}),
            );
            continue;
        }
        if !f.readable() {
            continue;
        }
        insert_path(&mut props, f.name, field_schema(f));
    }
    props.insert(
        "updatedAt".into(),
        json!({"type": "string", "format": "date-time"}),
    );
    props.insert(
        "createdAt".into(),
        json!({"type": "string", "format": "date-time"}),
    );
    if decl.auth {
        props.insert("collection".into(), json!({"const": decl.slug}));
    }
    json!({"type": "object", "properties": props, "required": ["id"]})
}

fn input_schema(decl: &CollectionDecl) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in decl.fields {
        if !f.writable() {
            continue;
        }
        let mut s = field_schema(f);
        if let Kind::Relation(_) | Kind::Upload(_) = f.kind {
            s = json!({"type": ["string", "null"], "format": "uuid"});
        }
        if let Kind::Secret | Kind::Password = f.kind {
            s = json!({"type": "string", "writeOnly": true});
        }
        insert_path(&mut props, f.name, s);
        if f.required && f.default.is_none() && !f.name.contains('.') {
            required.push(f.name);
        }
    }
    json!({"type": "object", "properties": props, "required": required})
}

fn param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn find_params() -> Vec<Value> {
    vec![
        param(
            "where",
            "Filter (bracket form `where[field][op]=v` or one JSON string)",
            json!({"type": "string"}),
        ),
        param(
            "depth",
            "Relationship population depth (default 2, max 10)",
            json!({"type": "integer"}),
        ),
        param(
            "limit",
            "Page size (default 10; 0 = all)",
            json!({"type": "integer", "minimum": 0}),
        ),
        param("page", "Page number", json!({"type": "integer", "minimum": 0})),
        param(
            "pagination",
            "`false` skips counting",
            json!({"type": "string", "enum": ["true", "false"]}),
        ),
        param(
            "sort",
            "Comma list of paths, `-` for descending",
            json!({"type": "string"}),
        ),
        param(
            "select",
            "Projection (`select[field]=true|false`)",
            json!({"type": "string"}),
        ),
        param(
            "tenant",
            "Tenant handle (tenant context)",
            json!({"type": "string"}),
        ),
    ]
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn errors() -> Map<String, Value> {
    let mut m = Map::new();
    for (code, desc) in [
        ("400", "Validation or query error"),
        ("403", "Not allowed"),
        ("404", "Not found"),
    ] {
        m.insert(
            code.into(),
            json_response(desc, json!({"$ref": "#/components/schemas/Errors"})),
        );
    }
    m
}

fn op(
    id: &str,
    summary: &str,
    tag: &str,
    params: Vec<Value>,
    body: Option<Value>,
    ok: (&str, Value),
) -> Value {
    let mut responses = errors();
    responses.insert(ok.0.into(), json_response("Success", ok.1));
    let mut o = json!({"operationId": id, "summary": summary, "tags": [tag], "parameters": params, "responses": responses});
    if let Some(b) = body {
        o["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": b}}});
    }
    o
}

/// Upload collections take `multipart/form-data` (`file` + `_payload`) on create and update, and
/// serve their files under `/api/{slug}/file/…`.
fn upload_paths(paths: &mut Map<String, Value>, slug: &str, tag: &str) {
    let form = |file_required: bool| {
        let required: Vec<&str> = if file_required { vec!["file"] } else { vec![] };
        json!({"multipart/form-data": {"schema": {"type": "object", "required": required, "properties": {
            "file": {"type": "string", "format": "binary", "description": "The file; its type is sniffed from the bytes"},
            "_payload": {"type": "string", "description": "A JSON object with the other fields"}}}}})
    };
    if let Some(post) = paths
        .get_mut(&format!("/api/{slug}"))
        .and_then(|p| p.get_mut("post"))
    {
        post["requestBody"] = json!({"required": true, "content": form(true)});
        post["responses"]["413"] = json!({"description": "File too large"});
        post["responses"]["503"] = json!({"description": "Storage unavailable"});
    }
    if let Some(patch) = paths
        .get_mut(&format!("/api/{slug}/{{id}}"))
        .and_then(|p| p.get_mut("patch"))
    {
        if let Some(content) = patch["requestBody"]["content"].as_object_mut() {
            if let Value::Object(f) = form(false) {
                content.extend(f);
            }
        }
    }
    let file = |id: &str, params: Value| {
        json!({"get": {"operationId": id, "summary": "The stored file (or one of its sizes), under the document's read access",
            "tags": [tag], "parameters": params, "responses": {
                "200": {"description": "The bytes", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "206": {"description": "The requested byte range"},
                "404": {"description": "No such file, or not readable"},
                "416": {"description": "Range not satisfiable"}}}})
    };
    let p = |name: &str| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}});
    let ident = slug.replace('-', "_");
    paths.insert(
        format!("/api/{slug}/file/{{tenant}}/{{filename}}"),
        file(
            &format!("file_{ident}_in_tenant"),
            json!([p("tenant"), p("filename")]),
        ),
    );
    paths.insert(
        format!("/api/{slug}/file/{{filename}}"),
        file(&format!("file_{ident}"), json!([p("filename")])),
    );
}

/// The whole document.
pub fn document(registry: &Registry, app_url: &str) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(
        "Errors".into(),
        json!({"type": "object", "required": ["errors"], "properties": {"errors": {"type": "array", "minItems": 1,
            "items": {"type": "object", "required": ["message"], "properties": {
                "name": {"type": "string"}, "message": {"type": "string"}, "data": {}}}}}}),
    );
    for decl in registry.all() {
        let name = component_name(decl);
        let doc_ref = json!({"$ref": format!("#/components/schemas/{name}")});
        let input_ref = json!({"$ref": format!("#/components/schemas/{name}Input")});
        schemas.insert(name.clone(), doc_schema(decl));
        schemas.insert(format!("{name}Input"), input_schema(decl));
        schemas.insert(
            format!("{name}List"),
            json!({"type": "object", "required": ["docs", "totalDocs", "limit", "page", "totalPages", "pagingCounter",
                "hasPrevPage", "hasNextPage", "prevPage", "nextPage"], "properties": {
                "docs": {"type": "array", "items": doc_ref},
                "hasNextPage": {"type": "boolean"}, "hasPrevPage": {"type": "boolean"},
                "limit": {"type": "integer"}, "nextPage": {"type": ["integer", "null"]}, "page": {"type": "integer"},
                "pagingCounter": {"type": "integer"}, "prevPage": {"type": ["integer", "null"]},
                "totalDocs": {"type": "integer"}, "totalPages": {"type": "integer"}}}),
        );
        let one = json!({"type": "object", "properties": {"doc": doc_ref, "message": {"type": "string"}}});
        let bulk = json!({"type": "object", "properties": {"docs": {"type": "array", "items": doc_ref},
            "errors": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "message": {"type": "string"}}}},
            "message": {"type": "string"}}});
        let id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}});
        let s = decl.slug;
        let tag = decl.plural;
        let id_ident = s.replace('-', "_");
        paths.insert(
            format!("/api/{s}"),
            json!({
                "get": op(&format!("list_{id_ident}"), &format!("List {}", decl.plural), tag, find_params(), None,
                    ("200", json!({"$ref": format!("#/components/schemas/{name}List")}))),
                "post": op(&format!("create_{id_ident}"), &format!("Create a {}", decl.singular), tag,
                    vec![param("depth", "Population depth of the returned doc", json!({"type": "integer"}))],
                    Some(input_ref.clone()), ("201", one.clone())),
                "patch": op(&format!("bulk_update_{id_ident}"), &format!("Update every {} matching where", decl.singular), tag,
                    find_params(), Some(input_ref.clone()), ("200", bulk.clone())),
                "delete": op(&format!("bulk_delete_{id_ident}"), &format!("Delete every {} matching where", decl.singular), tag,
                    find_params(), None, ("200", bulk)),
            }),
        );
        paths.insert(
            format!("/api/{s}/count"),
            json!({"get": op(&format!("count_{id_ident}"), &format!("Count {}", decl.plural), tag,
                vec![param("where", "Filter", json!({"type": "string"}))], None,
                ("200", json!({"type": "object", "required": ["totalDocs"], "properties": {"totalDocs": {"type": "integer"}}})))}),
        );
        let mut by_id_params = find_params();
        by_id_params.insert(0, id.clone());
        paths.insert(
            format!("/api/{s}/{{id}}"),
            json!({
                "get": op(&format!("get_{id_ident}"), &format!("Get a {}", decl.singular), tag, by_id_params.clone(), None, ("200", doc_ref.clone())),
                "patch": op(&format!("update_{id_ident}"), &format!("Update a {}", decl.singular), tag, by_id_params.clone(),
                    Some(input_ref), ("200", one.clone())),
                "delete": op(&format!("delete_{id_ident}"), &format!("Delete a {}", decl.singular), tag, by_id_params, None, ("200", one)),
            }),
        );
        if crate::media::is_upload(decl) {
            upload_paths(&mut paths, s, tag);
        }
    }
    let user = json!({"$ref": "#/components/schemas/Users"});
    paths.insert(
        "/api/users/login".into(),
        json!({"post": op("login", "Log in with email and password", "Auth", vec![],
            Some(json!({"type": "object", "required": ["email", "password"], "properties": {"email": {"type": "string"}, "password": {"type": "string"}}})),
            ("200", json!({"type": "object", "properties": {"message": {"type": "string"}, "exp": {"type": "integer"}, "token": {"type": "string"}, "user": user}})))}),
    );
    paths.insert(
        "/api/users/me".into(),
        json!({"get": op("me", "The signed-in user", "Auth", vec![], None,
            ("200", json!({"type": "object", "properties": {"user": {"anyOf": [user, {"type": "null"}]}, "message": {"type": "string"}}})))}),
    );
    paths.insert(
        "/api/users/refresh-token".into(),
        json!({"post": op("refresh_token", "Extend the session", "Auth", vec![], None,
            ("200", json!({"type": "object", "properties": {"refreshedToken": {"type": "string"}, "exp": {"type": "integer"}}})))}),
    );
    paths.insert(
        "/api/users/logout".into(),
        json!({"post": op("logout", "End the session", "Auth", vec![], None,
            ("200", json!({"type": "object", "properties": {"message": {"type": "string"}}})))}),
    );
    for (path, id, summary) in [
        ("/api/health", "health", "The process is alive"),
        ("/api/ready", "ready", "Database reachable and migrations applied"),
    ] {
        paths.insert(
            path.into(),
            json!({"get": {"operationId": id, "summary": summary, "tags": ["Operations"], "responses": {
                "200": json_response("Ready", json!({"type": "object"})),
                "503": json_response("Not ready", json!({"type": "object"}))}}}),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "CityOS Orchestrator API", "version": env!("CARGO_PKG_VERSION"),
            "description": "Payload CMS 3 compatible REST API of the CityOS Orchestrator, generated from the collection declarations."},
        "servers": [{"url": app_url}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "payloadJwt": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "`JWT <token>` or `Bearer <token>`"},
                "payloadCookie": {"type": "apiKey", "in": "cookie", "name": "payload-token"}
            }
        },
        "security": [{}, {"payloadJwt": []}, {"payloadCookie": []}]
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_collection_has_its_routes_and_schemas() {
        let doc = super::document(&crate::collections::Registry::new(), "http://localhost:3001");
        for d in crate::collections::Registry::new().all() {
            assert!(
                doc["paths"][format!("/api/{}", d.slug)]["get"].is_object(),
                "{}",
                d.slug
            );
            assert!(
                doc["paths"][format!("/api/{}/{{id}}", d.slug)]["patch"].is_object(),
                "{}",
                d.slug
            );
        }
        let users = &doc["components"]["schemas"]["Users"]["properties"];
        assert!(
            users.get("password").is_none(),
            "write-only fields are not in read schemas"
        );
        assert_eq!(
            doc["components"]["schemas"]["IntegrationEndpoints"]["properties"]["hasWebhookSecret"]["type"],
            "boolean"
        );
        assert_eq!(
            doc["components"]["schemas"]["Pages"]["properties"]["seo"]["properties"]["title"]["anyOf"][0]
                ["type"],
            "string"
        );
    }
}
