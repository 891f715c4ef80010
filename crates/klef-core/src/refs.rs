//! References between values, resolved on the client after decryption (the server only ever
//! holds ciphertext, so it cannot).
//!
//! A stored value may contain `${KEY}` (a key of the same environment), `${staging.KEY}` (a key
//! of another environment of the same project) or `${other-project/production.KEY}` (a key of
//! an environment of another project). `$${` is a literal `${`; every other `$` is kept as it is,
//! so values written before references existed (a password holding `$$`) read the same. Any
//! other `${` is an error (an unclosed `${`, a name that is not a key), never silently kept.
//!
//! A reference inside a value of another environment is read relative to that environment:
//! `${KEY}` in a value of `staging` is `staging.KEY`. [`Resolver`] follows references, loads
//! each other environment once (it asks for one with [`Outcome::Need`], the caller decrypts it
//! and hands it over with [`Resolver::provide`]), detects cycles, stops at [`MAX_DEPTH`] hops
//! and refuses a value that would grow beyond [`MAX_RESOLVED_LEN`] bytes, or a command whose
//! values together would grow beyond [`MAX_TOTAL_LEN`] (`A=${B}${B}`, `B=${C}${C}`, … doubles
//! at every step). Errors name the chain of references (`A → B → A`,
//! `DB_URL → staging.DB_HOST (not found)`), never a value.
//!
//! ```
//! use klef_core::dotenv::Entry;
//! use klef_core::refs::{Outcome, Resolver};
//!
//! let entries = vec![
//!     Entry::new("DB_HOST", "db.internal"),
//!     Entry::new("DB_URL", "postgres://app@${DB_HOST}/app"),
//!     Entry::new("PRICE", "$${NOT_A_REF}"),
//! ];
//! let mut r = Resolver::new("my-app", "development", &entries);
//! let Outcome::Done(out) = r.resolve_all(&entries).unwrap() else { unreachable!() };
//! assert_eq!(out[1].value.as_str(), "postgres://app@db.internal/app");
//! assert_eq!(out[2].value.as_str(), "${NOT_A_REF}");
//! ```

use std::collections::HashMap;
use std::fmt;

use zeroize::Zeroizing;

use crate::dotenv::Entry;
use crate::names::{MAX_VALUE_LEN, validate_key_name, validate_slug};

/// The most references followed from one value to the last one it depends on.
pub const MAX_DEPTH: usize = 32;
/// The largest a value may grow once its references are resolved (1 MiB, the largest value
/// that can be stored).
pub const MAX_RESOLVED_LEN: usize = MAX_VALUE_LEN;
/// The most bytes all values resolved by one [`Resolver`] may add up to (64 MiB).
pub const MAX_TOTAL_LEN: usize = 64 * MAX_VALUE_LEN;

/// One reference, `KEY`, `env.KEY` or `project/env.KEY`, as written between `${` and `}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The project's name (or id), when the reference names another project.
    pub project: Option<String>,
    /// The environment's slug, when the reference names another environment.
    pub env: Option<String>,
    /// The key name.
    pub key: String,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.project {
            write!(f, "{p}/")?;
        }
        if let Some(e) = &self.env {
            write!(f, "{e}.")?;
        }
        f.write_str(&self.key)
    }
}

impl Reference {
    /// Parses the text of a reference (what goes between `${` and `}`): `KEY`, `env.KEY` or
    /// `project/env.KEY`. The error is a short phrase, never the text.
    pub fn parse(body: &str) -> Result<Self, &'static str> {
        let (project, rest) = match body.rfind('/') {
            Some(i) => (Some(&body[..i]), &body[i + 1..]),
            None => (None, body),
        };
        if let Some(p) = project
            && (p.is_empty()
                || p.trim() != p
                || p.len() > 128
                || p.chars().any(|c| c.is_control() || c == '{' || c == '}'))
        {
            return Err("the project name is empty or malformed");
        }
        let (env, key) = match rest.split_once('.') {
            Some((e, k)) => (Some(e), k),
            None if project.is_some() => {
                return Err(
                    "a reference to another project needs an environment (project/env.KEY)",
                );
            }
            None => (None, rest),
        };
        if let Some(e) = env
            && validate_slug(e).is_err()
        {
            return Err("the environment is not a valid slug ([a-z0-9][a-z0-9_-]*)");
        }
        if validate_key_name(key).is_err() {
            return Err("the key is not a valid name ([A-Za-z_][A-Za-z0-9_]*)");
        }
        Ok(Self {
            project: project.map(str::to_owned),
            env: env.map(str::to_owned),
            key: key.to_owned(),
        })
    }
}

/// A piece of a stored value: text kept as it is, or a reference to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Literal text (a `$${` escape gives the text `${`).
    Text(&'a str),
    /// A reference.
    Ref(Reference),
}

/// A `${` that does not start a valid reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{problem} at byte {offset}")]
pub struct SyntaxError {
    /// Byte offset of the `${` in the value.
    pub offset: usize,
    /// What is wrong, as a lower-case phrase (never the value).
    pub problem: &'static str,
}

/// Whether `value` may hold a reference or an escape (it contains `${`); a value without one
/// resolves to itself.
#[must_use]
pub fn has_references(value: &str) -> bool {
    value.contains("${")
}

/// Splits a stored value into text and references.
pub fn parse(value: &str) -> Result<Vec<Piece<'_>>, SyntaxError> {
    let mut pieces = Vec::new();
    let bytes = value.as_bytes();
    let mut text_start = 0;
    let mut i = 0;
    while let Some(off) = value[i..].find('$') {
        let at = i + off;
        if bytes[at..].starts_with(b"$${") {
            if text_start < at {
                pieces.push(Piece::Text(&value[text_start..at]));
            }
            pieces.push(Piece::Text(&value[at + 1..at + 3]));
            i = at + 3;
            text_start = i;
        } else if bytes[at..].starts_with(b"${") {
            let Some(len) = value[at + 2..].find('}') else {
                return Err(SyntaxError {
                    offset: at,
                    problem: "`${` is not closed by `}` (write `$${` for a literal `${`)",
                });
            };
            let body = &value[at + 2..at + 2 + len];
            let r = Reference::parse(body).map_err(|problem| SyntaxError {
                offset: at,
                problem,
            })?;
            if text_start < at {
                pieces.push(Piece::Text(&value[text_start..at]));
            }
            pieces.push(Piece::Ref(r));
            i = at + 2 + len + 1;
            text_start = i;
        } else {
            i = at + 1;
        }
    }
    if text_start < value.len() {
        pieces.push(Piece::Text(&value[text_start..]));
    }
    Ok(pieces)
}

/// An environment, relative to the one being resolved: `project` is `None` for its own
/// project.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnvAddr {
    /// Another project's name (or id), as written in the reference.
    pub project: Option<String>,
    /// The environment's slug.
    pub env: String,
}

/// Why an environment's values cannot be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unreadable {
    /// No project of that name (that the caller can see).
    ProjectNotFound,
    /// The project has no environment of that slug.
    EnvironmentNotFound,
    /// The caller may not read it (a restricted member, a system key out of its scopes).
    NoAccess,
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ProjectNotFound => "project not found",
            Self::EnvironmentNotFound => "environment not found",
            Self::NoAccess => "no access",
        })
    }
}

/// A chain of references, rendered `A → staging.B → C`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain(pub Vec<String>);

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" → "))
    }
}

/// Why a value's references cannot be resolved. Messages name keys and references, never a
/// value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefError {
    /// The chain comes back to a key it started from.
    #[error("reference cycle: {chain}")]
    Cycle {
        /// The keys, the first repeated at the end.
        chain: Chain,
    },
    /// The last key of the chain does not exist.
    #[error("unresolved reference: {chain} (not found)")]
    NotFound {
        /// The keys up to the missing one.
        chain: Chain,
    },
    /// The environment of the last reference cannot be read.
    #[error("unresolved reference: {chain} ({reason})")]
    Unreadable {
        /// The keys up to the unreadable one.
        chain: Chain,
        /// Why.
        reason: Unreadable,
    },
    /// A `${` in the value of the last key does not start a valid reference.
    #[error("invalid reference in {chain}: {error}")]
    Syntax {
        /// The keys up to the one with the bad value.
        chain: Chain,
        /// Where and what.
        error: SyntaxError,
    },
    /// More than [`MAX_DEPTH`] references in a row.
    #[error("references nested more than {MAX_DEPTH} deep: {chain}")]
    TooDeep {
        /// The keys followed.
        chain: Chain,
    },
    /// A value (or all of them together) would grow beyond the limits.
    #[error("{chain} would be larger than {limit} bytes once its references are resolved")]
    TooLarge {
        /// The keys being resolved.
        chain: Chain,
        /// The limit reached, in bytes.
        limit: usize,
    },
}

/// What a resolution step gives: the result, or the environment it needs first.
#[derive(Debug)]
pub enum Outcome<T> {
    /// Resolved.
    Done(T),
    /// Load this environment's values and hand them over with [`Resolver::provide`], then ask
    /// again (what was resolved so far is kept).
    Need(EnvAddr),
}

type Values = HashMap<String, Zeroizing<String>>;

/// Resolves the references of one environment's values, loading others on demand (see the
/// module documentation).
pub struct Resolver {
    root_project: String,
    root: EnvAddr,
    envs: HashMap<EnvAddr, Result<Values, Unreadable>>,
    memo: HashMap<(EnvAddr, String), Zeroizing<String>>,
    total: usize,
    max_len: usize,
    max_total: usize,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("root", &self.root)
            .field("environments", &self.envs.len())
            .finish_non_exhaustive()
    }
}

fn values(entries: &[Entry]) -> Values {
    entries
        .iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

impl Resolver {
    /// A resolver for the environment `env` of project `project` (its name), whose values are
    /// `entries`.
    #[must_use]
    pub fn new(project: &str, env: &str, entries: &[Entry]) -> Self {
        let root = EnvAddr {
            project: None,
            env: env.to_owned(),
        };
        let mut envs = HashMap::new();
        envs.insert(root.clone(), Ok(values(entries)));
        Self {
            root_project: project.to_owned(),
            root,
            envs,
            memo: HashMap::new(),
            total: 0,
            max_len: MAX_RESOLVED_LEN,
            max_total: MAX_TOTAL_LEN,
        }
    }

    /// Lowers the size limits (for tests of the limits themselves).
    #[must_use]
    pub fn with_limits(mut self, max_len: usize, max_total: usize) -> Self {
        self.max_len = max_len.min(MAX_RESOLVED_LEN);
        self.max_total = max_total.min(MAX_TOTAL_LEN);
        self
    }

    /// Hands over the values of an environment asked for with [`Outcome::Need`], or why they
    /// cannot be had.
    pub fn provide(&mut self, addr: EnvAddr, loaded: Result<Vec<Entry>, Unreadable>) {
        self.envs.insert(addr, loaded.map(|e| values(&e)));
    }

    /// How many environments the resolver holds (the one it resolves included).
    #[must_use]
    pub fn environments(&self) -> usize {
        self.envs.len()
    }

    /// Resolves every value of `entries` (the environment given to [`Resolver::new`]).
    pub fn resolve_all(&mut self, entries: &[Entry]) -> Result<Outcome<Vec<Entry>>, RefError> {
        let root = self.root.clone();
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if !has_references(&e.value) {
                out.push(e.clone());
                continue;
            }
            match self.resolve_at(&root, &e.name, &mut Vec::new())? {
                Outcome::Need(addr) => return Ok(Outcome::Need(addr)),
                Outcome::Done(()) => out.push(Entry {
                    name: e.name.clone(),
                    value: self.memo[&(root.clone(), e.name.clone())].clone(),
                }),
            }
        }
        Ok(Outcome::Done(out))
    }

    /// Resolves one key of the environment given to [`Resolver::new`].
    pub fn resolve_key(&mut self, key: &str) -> Result<Outcome<Zeroizing<String>>, RefError> {
        let root = self.root.clone();
        self.resolve_in(&root, key)
    }

    /// Resolves a reference written relative to the environment given to [`Resolver::new`]
    /// (as a template's placeholder is).
    pub fn resolve_reference(
        &mut self,
        r: &Reference,
    ) -> Result<Outcome<Zeroizing<String>>, RefError> {
        let root = self.root.clone();
        let target = self.target(&root, r);
        self.resolve_in(&target, &r.key)
    }

    fn resolve_in(
        &mut self,
        addr: &EnvAddr,
        key: &str,
    ) -> Result<Outcome<Zeroizing<String>>, RefError> {
        if let Some(Ok(values)) = self.envs.get(addr)
            && let Some(v) = values.get(key)
            && !has_references(v)
        {
            return Ok(Outcome::Done(v.clone()));
        }
        match self.resolve_at(addr, key, &mut Vec::new())? {
            Outcome::Need(a) => Ok(Outcome::Need(a)),
            Outcome::Done(()) => Ok(Outcome::Done(
                self.memo[&(addr.clone(), key.to_owned())].clone(),
            )),
        }
    }

    /// The environment a reference found in a value of `from` points at.
    fn target(&self, from: &EnvAddr, r: &Reference) -> EnvAddr {
        match (&r.project, &r.env) {
            (Some(p), Some(env)) if *p != self.root_project => EnvAddr {
                project: Some(p.clone()),
                env: env.clone(),
            },
            (Some(_), Some(env)) => EnvAddr {
                project: None,
                env: env.clone(),
            },
            (_, Some(env)) => EnvAddr {
                project: from.project.clone(),
                env: env.clone(),
            },
            (_, None) => from.clone(),
        }
    }

    /// `KEY`, `staging.KEY` or `project/env.KEY`, relative to the root environment.
    fn name(&self, addr: &EnvAddr, key: &str) -> String {
        match &addr.project {
            Some(p) => format!("{p}/{}.{key}", addr.env),
            None if *addr == self.root => key.to_owned(),
            None => format!("{}.{key}", addr.env),
        }
    }

    fn chain(&self, stack: &[(EnvAddr, String)], last: (&EnvAddr, &str)) -> Chain {
        Chain(
            stack
                .iter()
                .map(|(a, k)| self.name(a, k))
                .chain(std::iter::once(self.name(last.0, last.1)))
                .collect(),
        )
    }

    /// Makes sure `memo` holds the resolved value of `key` in `addr`.
    fn resolve_at(
        &mut self,
        addr: &EnvAddr,
        key: &str,
        stack: &mut Vec<(EnvAddr, String)>,
    ) -> Result<Outcome<()>, RefError> {
        let id = (addr.clone(), key.to_owned());
        if self.memo.contains_key(&id) {
            return Ok(Outcome::Done(()));
        }
        if stack.contains(&id) {
            return Err(RefError::Cycle {
                chain: self.chain(stack, (addr, key)),
            });
        }
        if stack.len() > MAX_DEPTH {
            return Err(RefError::TooDeep {
                chain: self.chain(stack, (addr, key)),
            });
        }
        let value = match self.envs.get(addr) {
            None => return Ok(Outcome::Need(addr.clone())),
            Some(Err(reason)) => {
                return Err(RefError::Unreadable {
                    chain: self.chain(stack, (addr, key)),
                    reason: *reason,
                });
            }
            Some(Ok(values)) => match values.get(key) {
                Some(v) => v.clone(),
                None => {
                    return Err(RefError::NotFound {
                        chain: self.chain(stack, (addr, key)),
                    });
                }
            },
        };
        let pieces = parse(&value).map_err(|error| RefError::Syntax {
            chain: self.chain(stack, (addr, key)),
            error,
        })?;
        let too_large = |this: &Self, stack: &[(EnvAddr, String)], limit| RefError::TooLarge {
            chain: this.chain(stack, (addr, key)),
            limit,
        };
        let mut out = Zeroizing::new(String::new());
        stack.push(id.clone());
        for piece in pieces {
            let part = match piece {
                Piece::Text(t) => t,
                Piece::Ref(r) => {
                    let target = self.target(addr, &r);
                    match self.resolve_at(&target, &r.key, stack) {
                        Ok(Outcome::Done(())) => {}
                        other => {
                            stack.pop();
                            return other;
                        }
                    }
                    &self.memo[&(target, r.key)]
                }
            };
            if out.len() + part.len() > self.max_len {
                stack.pop();
                return Err(too_large(self, stack, self.max_len));
            }
            out.push_str(part);
        }
        stack.pop();
        self.total += out.len();
        if self.total > self.max_total {
            return Err(too_large(self, stack, self.max_total));
        }
        self.memo.insert(id, out);
        Ok(Outcome::Done(()))
    }
}

#[cfg(test)]
mod tests;
