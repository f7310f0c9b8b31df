//! The declaration types: a collection is data (fields, scope, hooks; its access rules are
//! the Cerbos policy named after its slug, `policies/<slug>.yaml`), and every
//! surface (REST, validation, OpenAPI, admin forms) is derived from it by the engine.

use crate::collections::hooks::Hooks;

/// How a collection's rows belong to tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Not tenant data (geo hierarchy).
    Global,
    /// `tenant_id NOT NULL`.
    Tenant,
    /// `tenant_id` nullable: NULL means public (media) or platform-wide (keys, logs).
    TenantOptional,
    /// The `tenants` table itself: the row id is the tenant.
    TenantSelf,
    /// Global identities (`users`), visible through memberships.
    Users,
}

/// Who may see or write a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Normal,
    /// Server-set: dropped from writes silently, as Payload does.
    ReadOnly,
    /// Accepted on writes, never returned (passwords).
    WriteOnly,
    /// Never on the wire.
    Hidden,
    /// Returned to readers other than anonymous only.
    NotPublic,
}

/// A sub-field of an array row or block (stored inside jsonb).
#[derive(Debug)]
pub struct SubField {
    pub name: &'static str,
    pub kind: SubKind,
    pub required: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum SubKind {
    Text,
    RichText,
    Upload(&'static str),
    Select(&'static [&'static str]),
    Rows(&'static [SubField]),
}

/// One block type of a `blocks` field.
#[derive(Debug)]
pub struct Block {
    pub slug: &'static str,
    pub fields: &'static [SubField],
}

/// A child table backing an array field (domains, memberships).
#[derive(Debug)]
pub struct ChildDecl {
    pub table: &'static str,
    /// Column pointing at the owner row.
    pub owner_column: &'static str,
    /// Extra fixed conditions identifying this field's rows, e.g. `("kind", "subdomain")`.
    pub fixed: &'static [(&'static str, &'static str)],
    /// When the owner is a tenant, rows with a store belong to the store, not the tenant.
    pub store_null: bool,
    /// Columns: (wire name, column, kind).
    pub columns: &'static [(&'static str, &'static str, ChildKind)],
    /// The wire name a bare string on write fills (`["fashionista"]` → `{subdomain: …}`).
    pub bare_string: Option<&'static str>,
    /// Extra trusted SQL selecting this field's rows; `{c}` stands for the child table's alias.
    pub condition: Option<&'static str>,
    /// The column that orders the rows (`position`: the array's order).
    pub order_column: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    Text,
    Bool,
    Date,
    Relation(&'static str),
    List(&'static [&'static str]),
    Select(&'static [&'static str]),
}

/// The type of a field, which decides its column type, coercion, operators and wire shape.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Text,
    Textarea,
    Email,
    Int,
    BigInt,
    Numeric,
    Checkbox,
    Select(&'static [&'static str]),
    Date,
    /// Single relationship (FK `<name>_id`), populated at depth.
    Relation(&'static str),
    /// Single upload (FK to media), populated at depth.
    Upload(&'static str),
    /// Id-valued reference of the log collections: never populated.
    IdRef,
    Json,
    RichText,
    /// `geography(Point,4326)`, `[lng, lat]` on the wire.
    Point,
    /// `vector(768)`, returned only when selected.
    Vector,
    /// `text[]` shown as `[{sub: value}]`; enumerated values when `options` is set.
    List {
        sub: &'static str,
        options: Option<&'static [&'static str]>,
    },
    /// jsonb array of rows with ids.
    Rows(&'static [SubField]),
    /// jsonb array of blocks.
    Blocks(&'static [Block]),
    /// An array stored in a child table.
    Child(&'static ChildDecl),
    /// Encrypted `bytea`; write-only. Reads show `has<Name>: bool` instead.
    Secret,
    /// A local password: written as an argon2id hash, never read.
    Password,
}

impl Kind {
    pub fn is_text_like(&self) -> bool {
        matches!(self, Kind::Text | Kind::Textarea | Kind::Email | Kind::Select(_))
    }
    pub fn is_number(&self) -> bool {
        matches!(self, Kind::Int | Kind::BigInt | Kind::Numeric)
    }
    /// Target collection of a populated reference.
    pub fn relation_target(&self) -> Option<&'static str> {
        match self {
            Kind::Relation(t) | Kind::Upload(t) => Some(t),
            _ => None,
        }
    }
    /// Stored in jsonb on the owner row.
    pub fn is_jsonb(&self) -> bool {
        matches!(
            self,
            Kind::Json | Kind::RichText | Kind::Rows(_) | Kind::Blocks(_)
        )
    }
}

/// A default applied on create when the field is absent.
#[derive(Debug, Clone, Copy)]
pub enum Default {
    Str(&'static str),
    Int(i64),
    Bool(bool),
    /// Filled from the request context (the resolved tenant).
    ContextTenant,
    ContextStore,
    /// The calling user's id, on create.
    Caller,
    /// The calling user's id, on create and on every update (`updatedBy`).
    CallerAlways,
}

/// One field of a collection.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Wire path; a dot nests it in a group (`seo.title` → `{"seo":{"title":…}}`).
    pub name: &'static str,
    /// Column; empty for child-table fields.
    pub column: &'static str,
    pub label: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub default: Option<Default>,
    pub visibility: Visibility,
    pub max_len: Option<usize>,
    /// A regex-free format check (handles, slugs, domains).
    pub format: Option<Format>,
}

/// Formats checked by hand (no regex dependency): the spec's patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`
    Handle,
    /// Lower-case words separated by `-`, segments by `/`.
    Slug,
    /// ISO 3166-1 alpha-2, upper-case.
    CountryCode,
    /// Absolute http(s) URL.
    HttpUrl,
}

impl Field {
    pub const fn new(name: &'static str, column: &'static str, label: &'static str, kind: Kind) -> Field {
        Field {
            name,
            column,
            label,
            kind,
            required: false,
            default: None,
            visibility: Visibility::Normal,
            max_len: None,
            format: None,
        }
    }
    pub const fn required(mut self) -> Field {
        self.required = true;
        self
    }
    pub const fn default(mut self, d: Default) -> Field {
        self.default = Some(d);
        self
    }
    pub const fn read_only(mut self) -> Field {
        self.visibility = Visibility::ReadOnly;
        self
    }
    pub const fn write_only(mut self) -> Field {
        self.visibility = Visibility::WriteOnly;
        self
    }
    /// Stored but never on the wire (hashes, counters).
    pub const fn hidden(mut self) -> Field {
        self.visibility = Visibility::Hidden;
        self
    }
    pub const fn not_public(mut self) -> Field {
        self.visibility = Visibility::NotPublic;
        self
    }
    pub const fn max(mut self, n: usize) -> Field {
        self.max_len = Some(n);
        self
    }
    pub const fn format(mut self, f: Format) -> Field {
        self.format = Some(f);
        self
    }
    pub fn readable(&self) -> bool {
        !matches!(self.visibility, Visibility::WriteOnly | Visibility::Hidden)
            && !matches!(self.kind, Kind::Secret | Kind::Password)
    }
    pub fn writable(&self) -> bool {
        !matches!(self.visibility, Visibility::ReadOnly | Visibility::Hidden)
    }
}

/// Short constructors so a declaration reads like the spec's table.
pub mod f {
    use super::{Field, Kind};
    pub const fn text(name: &'static str, column: &'static str, label: &'static str) -> Field {
        Field::new(name, column, label, Kind::Text).max(10_000)
    }
    pub const fn name(name: &'static str, column: &'static str, label: &'static str) -> Field {
        Field::new(name, column, label, Kind::Text).max(200)
    }
    pub const fn textarea(name: &'static str, column: &'static str, label: &'static str) -> Field {
        Field::new(name, column, label, Kind::Textarea).max(10_000)
    }
    pub const fn select(
        name: &'static str,
        column: &'static str,
        label: &'static str,
        options: &'static [&'static str],
    ) -> Field {
        Field::new(name, column, label, Kind::Select(options))
    }
    pub const fn rel(
        name: &'static str,
        column: &'static str,
        label: &'static str,
        to: &'static str,
    ) -> Field {
        Field::new(name, column, label, Kind::Relation(to))
    }
    pub const fn upload(name: &'static str, column: &'static str, label: &'static str) -> Field {
        Field::new(name, column, label, Kind::Upload("media"))
    }
    pub const fn date(name: &'static str, column: &'static str, label: &'static str) -> Field {
        Field::new(name, column, label, Kind::Date)
    }
    pub const fn json(name: &'static str, column: &'static str, label: &'static str) -> Field {
        Field::new(name, column, label, Kind::Json)
    }
    pub const fn list(
        name: &'static str,
        column: &'static str,
        label: &'static str,
        sub: &'static str,
        options: Option<&'static [&'static str]>,
    ) -> Field {
        Field::new(name, column, label, Kind::List { sub, options })
    }
    pub const fn id_ref(name: &'static str, column: &'static str, label: &'static str) -> Field {
        Field::new(name, column, label, Kind::IdRef)
    }
}

/// Navigation groups of the admin, as the seed guide groups collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminGroup {
    GeoHierarchy,
    Tenancy,
    Portals,
    UsersSecurity,
    Content,
    ControlPlane,
    Audit,
}

/// A collection: everything the engine needs to serve it.
#[derive(Debug)]
pub struct CollectionDecl {
    pub slug: &'static str,
    pub table: &'static str,
    pub singular: &'static str,
    pub plural: &'static str,
    pub group: AdminGroup,
    pub scope: Scope,
    pub fields: &'static [Field],
    /// Default `sort` (Payload syntax).
    pub default_sort: &'static str,
    pub hooks: Hooks,
    /// Unique constraint name → wire path, for "Value must be unique".
    pub unique: &'static [(&'static str, &'static str)],
    /// Auth collection (`users`): adds `collection` to documents and the login routes.
    pub auth: bool,
    /// Per-instance caches a write to this collection makes stale (dropped right after commit
    /// here; other instances hear the database's NOTIFY).
    pub invalidates: &'static [CacheKind],
}

/// The per-instance caches a write can invalidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheKind {
    /// Resolved principals (sessions, Keycloak users, API keys).
    Principals,
    /// Tenants by handle and host.
    Tenants,
    /// Integration endpoints' inbound webhook secrets.
    Endpoints,
}

impl CollectionDecl {
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
    /// The `tenant` relationship column, when rows belong to a tenant.
    pub fn tenant_column(&self) -> Option<&'static str> {
        match self.scope {
            Scope::Tenant | Scope::TenantOptional => Some("tenant_id"),
            Scope::TenantSelf => Some("id"),
            Scope::Global | Scope::Users => None,
        }
    }
    pub fn has_field_column(&self, column: &str) -> bool {
        self.fields.iter().any(|f| f.column == column)
    }
}
