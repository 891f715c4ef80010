//! Sign-up, sessions and failed sign-in attempts.

use klef_core::ids::AccountId;
use klef_core::model::{Account, Role, Timestamp, Workspace};
use klef_core::names::validate_display_name;

use crate::audit::Audit;
use crate::rows::parse_id;
use crate::tables;
use crate::tx::{Dialect, Tx};
use crate::{Store, StoreError, invalid, now_ms};

/// A new account as the server creates it.
#[derive(Debug)]
pub struct Signup<'a> {
    /// The account (its `email` must be set, normalised).
    pub account: &'a Account,
    /// The PHC string of the sign-in password's Argon2id hash.
    pub password_hash: &'a str,
    /// The personal workspace.
    pub personal: &'a Workspace,
    /// The first session.
    pub session: &'a NewSession,
    /// Whether an open invitation for the email is needed (unless this is the first account).
    pub require_invitation: bool,
}

/// What [`Store::signup`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupOutcome {
    /// The account exists; `server_owner` when it is the server's first account.
    Created {
        /// Whether it owns the server.
        server_owner: bool,
    },
    /// Nothing was written: sign-up needs an invitation for this email.
    InvitationRequired,
}

/// A session to store: only the token's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The account.
    pub account_id: AccountId,
    /// Its email.
    pub email: String,
    /// When the session expires.
    pub expires_at: Timestamp,
}

/// What an attempt (sign-in or sign-up) is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptScope {
    /// The email tried (whether or not the account exists).
    Account,
    /// The client address.
    Address,
}

/// One limit an attempt is counted against: at most `max` attempts of `subject` in the window.
#[derive(Debug, Clone, Copy)]
pub struct AttemptLimit<'a> {
    /// Email or address.
    pub scope: AttemptScope,
    /// What is counted (the server prefixes it with the action, `login:` or `signup:`).
    pub subject: &'a str,
    /// Attempts allowed in the window.
    pub max: i64,
}

/// The rows of a reserved attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptIds(Vec<i64>);

/// What [`Store::reserve_attempt`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The attempt is reserved: one row per limit.
    Reserved(AttemptIds),
    /// A limit is reached; nothing was written.
    Refused {
        /// The limit reached.
        scope: AttemptScope,
        /// When the oldest attempt counted against it was made.
        oldest: Option<Timestamp>,
    },
}

/// What [`Store::signup_precheck`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupPrecheck {
    /// A sign-up may go ahead.
    Allowed,
    /// The email has an account already.
    EmailTaken,
    /// An open invitation for the email is needed.
    InvitationRequired,
}

impl AttemptScope {
    fn as_str(self) -> &'static str {
        match self {
            AttemptScope::Account => "account",
            AttemptScope::Address => "address",
        }
    }
}

impl Store {
    /// Creates a server account, its personal workspace and its first session, and records
    /// `audit`, in one transaction. The first account on the server becomes its owner; later
    /// ones need an open invitation for their email when `require_invitation` is set (else
    /// [`SignupOutcome::InvitationRequired`] and nothing is written). A taken email or id gives
    /// [`StoreError::AlreadyExists`].
    pub async fn signup(
        &self,
        signup: &Signup<'_>,
        audit: &Audit,
    ) -> Result<SignupOutcome, StoreError> {
        let account = signup.account;
        let personal = signup.personal;
        validate_display_name("workspace name", &personal.name).map_err(invalid)?;
        let Some(email) = account.email.as_deref() else {
            return Err(invalid("a server account needs an email"));
        };
        let mut tx = Tx::write(self).await?;
        let result = async {
            let server_owner = tx.count("SELECT COUNT(*) FROM accounts", &[]).await? == 0;
            if server_owner {
                tx.execute(
                    "INSERT INTO klef_meta (key, value) VALUES ('server_owner', $1)",
                    &[account.id.to_string().into()],
                )
                .await
                .map_err(|e| StoreError::exists_or(e, || "the server owner".into()))?;
            } else if signup.require_invitation {
                let open = tx
                    .count(
                        "SELECT COUNT(*) FROM invitations WHERE email = $1 AND closed_at IS NULL",
                        &[email.into()],
                    )
                    .await?;
                if open == 0 {
                    return Ok(SignupOutcome::InvitationRequired);
                }
            }
            tables::insert_account(&mut tx, account, Some(signup.password_hash))
                .await
                .map_err(|e| {
                    StoreError::exists_or(e, || "an account with this email or id".into())
                })?;
            let personal = Workspace {
                personal: true,
                ..personal.clone()
            };
            tables::insert_workspace(&mut tx, &personal, &account.id)
                .await
                .map_err(|e| StoreError::exists_or(e, || format!("workspace {}", personal.id)))?;
            tables::insert_member(
                &mut tx,
                &personal.id,
                &account.id,
                Role::Owner,
                personal.created_at,
            )
            .await?;
            insert_session(&mut tx, &account.id, signup.session).await?;
            tables::insert_audit(&mut tx, audit).await?;
            Ok(SignupOutcome::Created { server_owner })
        }
        .await;
        tx.finish(result).await
    }

    /// The account id and password hash for a sign-in email.
    pub async fn login_lookup(
        &self,
        email: &str,
    ) -> Result<Option<(AccountId, Option<String>)>, StoreError> {
        let row: Option<(String, Option<String>)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT id, password_hash FROM accounts WHERE email = $1")
                .bind(email)
                .fetch_optional(pool)
                .await?
        });
        row.map(|(id, hash)| Ok((parse_id(&id, "account")?, hash)))
            .transpose()
    }

    /// Stores a new session for `account` and records `audit`.
    pub async fn create_session(
        &self,
        account: &AccountId,
        session: &NewSession,
        audit: &Audit,
    ) -> Result<(), StoreError> {
        let mut tx = Tx::write(self).await?;
        let result = async {
            insert_session(&mut tx, account, session).await?;
            tables::insert_audit(&mut tx, audit).await?;
            Ok(())
        }
        .await;
        tx.finish(result).await
    }

    /// The live (not revoked, not expired at `now`) session with this token hash.
    pub async fn session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<SessionInfo>, StoreError> {
        let row: Option<(String, Option<String>, i64)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT a.id, a.email, s.expires_at FROM sessions s \
                 JOIN accounts a ON a.id = s.account_id \
                 WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        row.map(|(id, email, expires_at)| {
            Ok(SessionInfo {
                account_id: parse_id(&id, "account")?,
                email: email.unwrap_or_default(),
                expires_at,
            })
        })
        .transpose()
    }

    /// Revokes a session and records `audit`; `false` when it was not live.
    pub async fn revoke_session(
        &self,
        token_hash: &str,
        audit: &Audit,
    ) -> Result<bool, StoreError> {
        let mut tx = Tx::write(self).await?;
        let result = async {
            let done = tx
                .execute(
                    "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                    &[token_hash.into(), now_ms().into()],
                )
                .await?;
            if done > 0 {
                tables::insert_audit(&mut tx, audit).await?;
            }
            Ok(done > 0)
        }
        .await;
        tx.finish(result).await
    }

    /// Reserves one attempt against every limit in `limits`, atomically: in one transaction
    /// that holds a per-subject lock (`PostgreSQL`: a transaction-scoped advisory lock per
    /// subject, so replicas sharing the database serialise too; `SQLite`: the write lock of
    /// `BEGIN IMMEDIATE`), counts each subject's attempts since `since` and, when every count is
    /// below its `max`, inserts one attempt row per subject. N parallel attempts therefore
    /// reserve at most `max` rows, and only a reserved attempt may check a password. The rows
    /// stay (they are the failures) unless [`Store::release_attempt`] gives them back.
    pub async fn reserve_attempt(
        &self,
        limits: &[AttemptLimit<'_>],
        since: Timestamp,
    ) -> Result<Reservation, StoreError> {
        let now = now_ms();
        let mut keys: Vec<String> = limits
            .iter()
            .map(|l| format!("{}:{}", l.scope.as_str(), l.subject))
            .collect();
        // One order for every caller, so two reservations never wait on each other's locks.
        keys.sort();
        keys.dedup();
        let mut tx = Tx::write(self).await?;
        let result = async {
            if tx.dialect() == Dialect::Postgres {
                for key in &keys {
                    tx.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                        &[key.into()],
                    )
                    .await?;
                }
            }
            for limit in limits {
                let (count, oldest): (i64, Option<i64>) = tx
                    .one(
                        "SELECT COUNT(*), MIN(attempted_at) FROM login_attempts \
                         WHERE scope = $1 AND subject = $2 AND attempted_at >= $3",
                        &[
                            limit.scope.as_str().into(),
                            limit.subject.into(),
                            since.into(),
                        ],
                    )
                    .await?;
                if count >= limit.max {
                    return Ok(Reservation::Refused {
                        scope: limit.scope,
                        oldest,
                    });
                }
            }
            let mut ids = Vec::with_capacity(limits.len());
            for limit in limits {
                let (id,): (i64,) = tx
                    .one(
                        "INSERT INTO login_attempts (scope, subject, attempted_at) \
                         VALUES ($1, $2, $3) RETURNING id",
                        &[
                            limit.scope.as_str().into(),
                            limit.subject.into(),
                            now.into(),
                        ],
                    )
                    .await?;
                ids.push(id);
            }
            Ok(Reservation::Reserved(AttemptIds(ids)))
        }
        .await;
        tx.finish(result).await
    }

    /// Gives a reserved attempt back: it succeeded, or no password was checked after all.
    pub async fn release_attempt(&self, ids: &AttemptIds) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            for id in &ids.0 {
                sqlx::query("DELETE FROM login_attempts WHERE id = $1")
                    .bind(id)
                    .execute(pool)
                    .await?;
            }
        });
        Ok(())
    }

    /// Records `audit` for a failed attempt (its reserved rows stay, counting as the failure)
    /// and deletes attempt rows older than `prune_before`.
    pub async fn record_failed_attempt(
        &self,
        prune_before: Timestamp,
        audit: &Audit,
    ) -> Result<(), StoreError> {
        let mut tx = Tx::write(self).await?;
        let result = async {
            tx.execute(
                "DELETE FROM login_attempts WHERE attempted_at < $1",
                &[prune_before.into()],
            )
            .await?;
            tables::insert_audit(&mut tx, audit).await?;
            Ok(())
        }
        .await;
        tx.finish(result).await
    }

    /// Whether a sign-up for `email` could succeed, from cheap reads only, so the server can
    /// refuse before hashing a password: not when the email is taken, nor when an invitation
    /// is required (`require_invitation`, and the server has an owner already) and none is
    /// open for it. [`Store::signup`] checks the same again in its transaction.
    pub async fn signup_precheck(
        &self,
        email: &str,
        require_invitation: bool,
    ) -> Result<SignupPrecheck, StoreError> {
        let (taken, accounts, open): (i64, i64, i64) = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM accounts WHERE email = $1), \
                        (SELECT COUNT(*) FROM accounts), \
                        (SELECT COUNT(*) FROM invitations WHERE email = $1 AND closed_at IS NULL)",
            )
            .bind(email)
            .fetch_one(pool)
            .await?
        });
        Ok(if taken > 0 {
            SignupPrecheck::EmailTaken
        } else if require_invitation && accounts > 0 && open == 0 {
            SignupPrecheck::InvitationRequired
        } else {
            SignupPrecheck::Allowed
        })
    }

    /// Forgets the failed sign-ins of `subject` (after a successful one).
    pub async fn clear_login_failures(
        &self,
        scope: AttemptScope,
        subject: &str,
    ) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM login_attempts WHERE scope = $1 AND subject = $2")
                .bind(scope.as_str())
                .bind(subject)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The account that owns the server (the first to sign up), if any.
    pub async fn server_owner(&self) -> Result<Option<AccountId>, StoreError> {
        let id: Option<String> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT value FROM klef_meta WHERE key = 'server_owner'")
                .fetch_optional(pool)
                .await?
        });
        id.map(|id| parse_id(&id, "account")).transpose()
    }
}

/// Stores a session of `account` (only the token's hash).
async fn insert_session(
    tx: &mut Tx,
    account: &AccountId,
    session: &NewSession,
) -> Result<(), sqlx::Error> {
    tx.execute(
        "INSERT INTO sessions (id, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        &[
            (&session.token_hash).into(),
            account.to_string().into(),
            session.created_at.into(),
            session.expires_at.into(),
        ],
    )
    .await?;
    Ok(())
}
