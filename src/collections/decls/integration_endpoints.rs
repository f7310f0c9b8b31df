use super::prelude::*;

pub static DECL: CollectionDecl = CollectionDecl {
    slug: "integration-endpoints",
    table: "integration_endpoints",
    singular: "Integration Endpoint",
    plural: "Integration Endpoints",
    group: AdminGroup::ControlPlane,
    scope: Scope::Tenant,
    fields: &[
        name("name", "name", "Name").required(),
        tenant_field(),
        rel("store", "store_id", "Store", "stores"),
        select("systemType", "system_type", "System", SYSTEMS).required(),
        text("baseUrl", "base_url", "Base URL")
            .required()
            .format(Format::HttpUrl),
        select(
            "authType",
            "auth_type",
            "Auth Type",
            &["api_key", "bearer", "basic", "none"],
        )
        .required()
        .default(Default::Str("none")),
        text("secretRef", "secret_ref", "Secret Env Var"),
        Field::new("authSecret", "auth_secret_enc", "Auth Secret", Kind::Secret).write_only(),
        Field::new(
            "webhookSecret",
            "webhook_secret_enc",
            "Webhook Secret",
            Kind::Secret,
        )
        .write_only(),
        date(
            "previousWebhookSecretExpiresAt",
            "previous_webhook_secret_expires_at",
            "Previous Secret Expires",
        )
        .read_only(),
        list("events", "events", "Events", "event", None),
        Field::new("enabled", "enabled", "Enabled", Kind::Checkbox).default(Default::Bool(true)),
        Field::new("timeoutMs", "timeout_ms", "Timeout (ms)", Kind::Int).default(Default::Int(10_000)),
        json("config", "config", "Config"),
        date(
            "healthCheck.lastCheckAt",
            "health_check_last_check_at",
            "Last Check",
        )
        .read_only(),
        select(
            "healthCheck.status",
            "health_check_status",
            "Health",
            &["healthy", "degraded", "unhealthy", "unknown"],
        )
        .read_only(),
        text("healthCheck.lastError", "health_check_last_error", "Last Error").read_only(),
        json("metadata", "metadata", "Metadata"),
    ],
    default_sort: "name",
    hooks: Hooks::NONE,
    unique: &[(
        "integration_endpoints_tenant_id_store_id_system_type_key",
        "systemType",
    )],
    auth: false,
    invalidates: &[CacheKind::Endpoints],
};
