use super::prelude::*;

pub static DECL: CollectionDecl = CollectionDecl {
    slug: "audit-logs",
    table: "audit_logs",
    singular: "Audit Log",
    plural: "Audit Logs",
    group: AdminGroup::Audit,
    scope: Scope::TenantOptional,
    fields: &[
        select(
            "actorType",
            "actor_type",
            "Actor Type",
            &["user", "api_key", "system", "webhook"],
        )
        .read_only(),
        id_ref("actorUserId", "actor_user_id", "Actor User").read_only(),
        id_ref("actorApiKeyId", "actor_api_key_id", "Actor API Key").read_only(),
        list("actorRoles", "actor_roles", "Actor Roles", "role", None).read_only(),
        text("action", "action", "Action").read_only(),
        text("collection", "collection", "Collection").read_only(),
        text("docId", "doc_id", "Document").read_only(),
        id_ref("tenantId", "tenant_id", "Tenant").read_only(),
        id_ref("storeId", "store_id", "Store").read_only(),
        text("requestId", "request_id", "Request ID").read_only(),
        text("contextSource", "context_source", "Context Source").read_only(),
        text("ip", "ip", "IP").read_only(),
        text("userAgent", "user_agent", "User Agent").read_only(),
        json("diffSummary", "diff_summary", "Changes").read_only(),
        json("metadata", "metadata", "Metadata").read_only(),
    ],
    default_sort: "-createdAt",
    hooks: Hooks::NONE,
    unique: &[],
    auth: false,
    invalidates: &[],
};
