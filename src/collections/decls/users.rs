use super::prelude::*;

pub static MEMBERSHIPS: ChildDecl = ChildDecl {
    table: "user_tenant_memberships",
    owner_column: "user_id",
    fixed: &[],
    store_null: false,
    columns: &[
        ("tenant", "tenant_id", ChildKind::Relation("tenants")),
        ("store", "store_id", ChildKind::Relation("stores")),
        ("roles", "roles", ChildKind::List(MEMBERSHIP_ROLES)),
        (
            "status",
            "status",
            ChildKind::Select(&["active", "suspended", "pending"]),
        ),
        ("joinedAt", "joined_at", ChildKind::Date),
        ("source", "source", ChildKind::Select(&["local", "token"])),
    ],
    bare_string: None,
    condition: None,
    order_column: "position",
};

/// Live local-login sessions, shown to the user they belong to only (Payload shows another
/// user's sessions as `[]`): `cityos_user_id()` is the caller, set per request.
pub static SESSIONS: ChildDecl = ChildDecl {
    table: "user_sessions",
    owner_column: "user_id",
    fixed: &[],
    store_null: false,
    columns: &[
        ("createdAt", "created_at", ChildKind::Date),
        ("expiresAt", "expires_at", ChildKind::Date),
    ],
    bare_string: None,
    condition: Some("{c}.revoked_at IS NULL AND {c}.expires_at > now() AND {c}.user_id = cityos_user_id()"),
    order_column: "created_at",
};

pub static DECL: CollectionDecl = CollectionDecl {
    slug: "users",
    table: "users",
    singular: "User",
    plural: "Users",
    group: AdminGroup::UsersSecurity,
    scope: Scope::Users,
    fields: &[
        Field::new("email", "email", "Email", Kind::Email)
            .required()
            .max(320),
        name("name", "name", "Name"),
        select(
            "externalAuthProvider",
            "external_auth_provider",
            "Auth Provider",
            &["keycloak", "oidc", "local"],
        )
        .required()
        .default(Default::Str("local")),
        text("externalUserId", "external_user_id", "External User ID"),
        select("status", "status", "Status", &["active", "disabled"])
            .required()
            .default(Default::Str("active")),
        list(
            "globalRoles",
            "global_roles",
            "Global Roles",
            "role",
            Some(&["super_admin", "platform_operator", "support_agent"]),
        ),
        Field::new(
            "tenantMemberships",
            "",
            "Tenant Memberships",
            Kind::Child(&MEMBERSHIPS),
        ),
        Field::new("password", "password_hash", "Password", Kind::Password)
            .write_only()
            .max(1024),
        date("lastLoginAt", "last_login_at", "Last Login").read_only(),
        Field::new("sessions", "", "Sessions", Kind::Child(&SESSIONS)).read_only(),
        json("preferences", "preferences", "Preferences"),
        json("metadata", "metadata", "Metadata"),
    ],
    default_sort: "email",
    hooks: Hooks {
        after_delete: Some(hooks::revoke_owned_keys),
        ..Hooks::NONE
    },
    unique: &[
        ("users_email_key", "email"),
        (
            "users_external_auth_provider_external_user_id_key",
            "externalUserId",
        ),
    ],
    auth: true,
    invalidates: &[CacheKind::Principals],
};
