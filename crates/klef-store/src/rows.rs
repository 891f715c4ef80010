//! Database rows (`FromRow`, the same struct for both backends) and their conversion into
//! klef-core models. A value that cannot be read is reported as [`StoreError::Corrupt`] without
//! its content.

use std::str::FromStr;

use klef_core::backup::GranteeKind;
use klef_core::ids::{EnvironmentId, ProjectId};
use klef_core::model::{
    Account, AccountKeys, Blob, Environment, Grantee, KdfAlgorithm, KdfParams, PreviousAccountKeys,
    Project, SecretVersion, UnknownName, Workspace,
};

use crate::StoreError;

/// Parses a stored id.
pub(crate) fn parse_id<T: FromStr>(raw: &str, what: &str) -> Result<T, StoreError> {
    raw.parse().map_err(|_| StoreError::Corrupt {
        what: format!("invalid {what} id"),
    })
}

/// Parses a stored name of a closed set (a role, a grantee kind, …) through its `FromStr`.
pub(crate) fn parse_name<T: FromStr<Err = UnknownName>>(raw: &str) -> Result<T, StoreError> {
    raw.parse().map_err(|e: UnknownName| StoreError::Corrupt {
        what: format!("unknown {}", e.kind),
    })
}

/// The grantee a stored `grantee_kind` and `grantee_id` name.
pub(crate) fn grantee_of(kind: &str, id: &str) -> Result<Grantee, StoreError> {
    Ok(match parse_name(kind)? {
        GranteeKind::Account => Grantee::Account(parse_id(id, "account")?),
        GranteeKind::ApiKey => Grantee::ApiKey(parse_id(id, "api key")?),
    })
}

/// The stored name of a KDF algorithm.
pub(crate) fn kdf_algorithm_name(a: KdfAlgorithm) -> &'static str {
    match a {
        KdfAlgorithm::Argon2id => "argon2id",
    }
}

fn kdf_cost(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt {
        what: format!("{what} out of range"),
    })
}

row! {
    pub(crate) struct AccountRow {
        id: String,
        email: Option<String>,
        kdf_algorithm: String,
        kdf_m_cost_kib: i64,
        kdf_t_cost: i64,
        kdf_p_cost: i64,
        kdf_salt: Vec<u8>,
        master_key_by_password: Vec<u8>,
        master_key_by_recovery: Vec<u8>,
        public_key: Vec<u8>,
        private_key_sealed: Vec<u8>,
        identity_key: Option<Vec<u8>>,
        created_at: i64,
    }
}

/// The stored KDF parameters: algorithm name, the three costs and the salt.
fn kdf_params(
    algorithm: &str,
    m_cost_kib: i64,
    t_cost: i64,
    p_cost: i64,
    salt: Vec<u8>,
) -> Result<KdfParams, StoreError> {
    let algorithm = match algorithm {
        "argon2id" => KdfAlgorithm::Argon2id,
        _ => {
            return Err(StoreError::Corrupt {
                what: "unknown key-derivation algorithm (written by a newer Klef?)".into(),
            });
        }
    };
    Ok(KdfParams {
        algorithm,
        m_cost_kib: kdf_cost(m_cost_kib, "kdf memory cost")?,
        t_cost: kdf_cost(t_cost, "kdf time cost")?,
        p_cost: kdf_cost(p_cost, "kdf parallelism")?,
        salt: Blob(salt),
    })
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;

    fn try_from(r: AccountRow) -> Result<Self, StoreError> {
        Ok(Account {
            id: parse_id(&r.id, "account")?,
            email: r.email,
            keys: AccountKeys {
                kdf: kdf_params(
                    &r.kdf_algorithm,
                    r.kdf_m_cost_kib,
                    r.kdf_t_cost,
                    r.kdf_p_cost,
                    r.kdf_salt,
                )?,
                master_key_by_password: Blob(r.master_key_by_password),
                master_key_by_recovery: Blob(r.master_key_by_recovery),
                public_key: Blob(r.public_key),
                private_key_sealed: Blob(r.private_key_sealed),
            },
            identity_key: r.identity_key.map(Blob),
            created_at: r.created_at,
        })
    }
}

row! {
    pub(crate) struct KeyHistoryRow {
        kdf_algorithm: String,
        kdf_m_cost_kib: i64,
        kdf_t_cost: i64,
        kdf_p_cost: i64,
        kdf_salt: Vec<u8>,
        master_key_by_password: Vec<u8>,
        master_key_by_recovery: Vec<u8>,
        replaced_at: i64,
    }
}

impl TryFrom<KeyHistoryRow> for PreviousAccountKeys {
    type Error = StoreError;

    fn try_from(r: KeyHistoryRow) -> Result<Self, StoreError> {
        Ok(PreviousAccountKeys {
            kdf: kdf_params(
                &r.kdf_algorithm,
                r.kdf_m_cost_kib,
                r.kdf_t_cost,
                r.kdf_p_cost,
                r.kdf_salt,
            )?,
            master_key_by_password: Blob(r.master_key_by_password),
            master_key_by_recovery: Blob(r.master_key_by_recovery),
            replaced_at: r.replaced_at,
        })
    }
}

row! {
    pub(crate) struct WorkspaceRow {
        id: String,
        name: String,
        personal: bool,
        created_at: i64,
    }
}

impl TryFrom<WorkspaceRow> for Workspace {
    type Error = StoreError;

    fn try_from(r: WorkspaceRow) -> Result<Self, StoreError> {
        Ok(Workspace {
            id: parse_id(&r.id, "workspace")?,
            name: r.name,
            personal: r.personal,
            created_at: r.created_at,
        })
    }
}

row! {
    pub(crate) struct ProjectRow {
        id: String,
        workspace_id: String,
        name: String,
        created_at: i64,
    }
}

impl TryFrom<ProjectRow> for Project {
    type Error = StoreError;

    fn try_from(r: ProjectRow) -> Result<Self, StoreError> {
        Ok(Project {
            id: parse_id::<ProjectId>(&r.id, "project")?,
            workspace_id: parse_id(&r.workspace_id, "workspace")?,
            name: r.name,
            created_at: r.created_at,
        })
    }
}

row! {
    pub(crate) struct EnvironmentRow {
        id: String,
        project_id: String,
        slug: String,
        name: String,
        key_version: i64,
        created_at: i64,
    }
}

impl TryFrom<EnvironmentRow> for Environment {
    type Error = StoreError;

    fn try_from(r: EnvironmentRow) -> Result<Self, StoreError> {
        Ok(Environment {
            id: parse_id::<EnvironmentId>(&r.id, "environment")?,
            project_id: parse_id(&r.project_id, "project")?,
            slug: r.slug,
            name: r.name,
            key_version: r.key_version,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SecretRow {
    environment_id: String,
    #[sqlx(flatten)]
    version: VersionRow,
}

#[cfg(feature = "sqlite")]
impl crate::blocking::FromRow for SecretRow {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            environment_id: row.get("environment_id")?,
            version: crate::blocking::FromRow::from_row(row)?,
        })
    }
}

impl TryFrom<SecretRow> for SecretVersion {
    type Error = StoreError;

    fn try_from(r: SecretRow) -> Result<Self, StoreError> {
        Ok(r.version
            .into_version(parse_id(&r.environment_id, "environment")?))
    }
}

row! {
    /// A secret version read for one environment (the query's `environment_id = $1`): every column
    /// but the environment's id, which the caller already holds, so neither `SQLite` nor this
    /// conversion copies and parses the same id once per row. [`SecretRow`] adds the id.
    pub(crate) struct VersionRow {
        name: String,
        version: i64,
        ciphertext: Option<Vec<u8>>,
        key_version: i64,
        created_at: i64,
        author: Option<String>,
    }
}

impl VersionRow {
    /// The version, as stored in `environment_id`.
    pub(crate) fn into_version(self, environment_id: EnvironmentId) -> SecretVersion {
        SecretVersion {
            environment_id,
            name: self.name,
            version: self.version,
            ciphertext: self.ciphertext.map(Blob),
            key_version: self.key_version,
            created_at: self.created_at,
            author: self.author,
        }
    }
}

/// The newest version of one name, as `write_secrets` needs it (read by the pool only).
#[derive(sqlx::FromRow)]
pub(crate) struct LatestRow {
    pub(crate) name: String,
    pub(crate) version: i64,
    pub(crate) deleted: bool,
    pub(crate) author: Option<String>,
}

/// Converts every row, failing on the first unreadable one.
pub(crate) fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
