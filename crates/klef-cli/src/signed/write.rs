//! What a writer does with an opened environment: the next manifest, sealing, rotation and
//! rename manifests, re-signing before a removal.

use super::*;
impl Opened<'_> {
    /// An environment made before manifests: the local vault's owner seals it now (the first
    /// manifest lists the values as they are); elsewhere a warning says it is not verified.
    pub(super) async fn unsealed(
        &mut self,
        ctx: &Context,
        b: &AnyBackend,
        t: &Target,
    ) -> Result<()> {
        if matches!(self.pins, Pins::Local(_)) && self.signer.is_some() {
            let record = self.seal_record(t)?;
            b.write_secrets(&t.env.id, &[], Some(&record)).await?;
            let m = self.adopt(&record, t)?;
            self.pins.record(&self.workspace, t, m.head())?;
            self.manifest = Some(m);
            return Ok(());
        }
        ctx.printer.warn(&format!(
            "{} has no signed state yet (made before signed manifests): its values cannot be verified; an owner or admin seals it with `klef env seal {}`",
            t.describe(),
            t.env.slug
        ));
        Ok(())
    }

    /// The first manifest of an environment made before manifests, listing its values as they
    /// are now (an owner or admin vouches for them by signing).
    fn seal_record(&self, t: &Target) -> Result<ManifestRecord> {
        let signer = self.admin_signer(t)?;
        let body = self.sealing_body(t, signer);
        Ok(record(&body.sign(&signer.key), true, 1))
    }

    /// The body of a first manifest for the values as they are now, under the key this
    /// command opened (what an owner or admin vouches for when sealing).
    fn sealing_body(&self, t: &Target, signer: &Signer) -> ManifestBody {
        let key_version = u64::try_from(t.env.key_version).unwrap_or(1);
        let mut body = ManifestBody::first(
            &expected(t),
            &self.key,
            key_version,
            signer.roster,
            signer.principal,
        );
        body.values = self.current_values();
        body
    }

    fn admin_signer(&self, t: &Target) -> Result<&Signer> {
        match &self.signer {
            Some(s) if s.admin => Ok(s),
            _ => Err(Failure::permission(format!(
                "only an owner or admin can sign the first state of {}",
                t.describe()
            ))
            .hint("ask a workspace admin to run `klef env seal`")
            .into()),
        }
    }

    /// The live values as manifest entries.
    fn current_values(&self) -> BTreeMap<String, ValueRef> {
        self.secrets
            .iter()
            .filter_map(|s| {
                let ct = s.ciphertext.as_ref()?;
                Some((
                    s.name.clone(),
                    ValueRef::new(u64::try_from(s.version).unwrap_or(0), ct.as_bytes()),
                ))
            })
            .collect()
    }

    /// A manifest this command just signed and stored, as verified state.
    /// (The local vault only: its owner is the only signer.)
    fn adopt(&self, record: &ManifestRecord, t: &Target) -> Result<Manifest> {
        let Some(Signer {
            principal: PrincipalId::Member(account),
            key,
            ..
        }) = &self.signer
        else {
            return Err(Failure::other("only a vault's owner signs its state").into());
        };
        let signed = to_signed(std::slice::from_ref(record))?;
        let authority = Authority::LocalOwner {
            account: *account,
            key: key.verifying_key(),
        };
        verify_update(&expected(t), &authority, None, &signed)
            .map_err(|e| Failure::other(format!("{}: {e}", t.describe())).into())
    }

    /// Signs and stores the first manifest of an environment made before manifests, listing
    /// its values as they are now (an owner or admin vouches for them); returns its revision.
    /// An environment that has signed state already is left as it is.
    pub(crate) async fn seal(&mut self, b: &AnyBackend, t: &Target) -> Result<u64> {
        if let Some(m) = &self.manifest {
            return Ok(m.body().revision);
        }
        let record = self.seal_record(t)?;
        b.write_secrets(&t.env.id, &[], Some(&record))
            .await
            .with_context(|| format!("failed to seal {}", t.describe()))?;
        self.written(t, &record).await?;
        Ok(record.revision)
    }

    /// The names whose latest version is a delete (they had values once).
    pub(crate) fn deleted_names(&self) -> impl Iterator<Item = &str> {
        self.deleted.iter().map(|d| d.name.as_str())
    }

    /// The verified manifest's revision, if any.
    pub(crate) fn revision(&self) -> Option<u64> {
        self.manifest.as_ref().map(|m| m.body().revision)
    }

    /// The key version values are sealed under now: the signed state's, else (an environment
    /// not sealed yet) the server's.
    pub(crate) fn key_version(&self, t: &Target) -> i64 {
        self.manifest.as_ref().map_or(t.env.key_version, |m| {
            i64::try_from(m.body().key_version).unwrap_or(i64::MAX)
        })
    }

    /// Where the next write of `name` goes: `(version, key version)`, for
    /// `secrets::encrypt`.
    pub(crate) fn next_place(&self, t: &Target, name: &str) -> (i64, i64) {
        (self.next_version(name), self.key_version(t))
    }

    /// The version the next write of `name` gets (one more than its latest, a delete included).
    pub(crate) fn next_version(&self, name: &str) -> i64 {
        let live = self
            .secrets
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.version)
            .or_else(|| {
                // A value left out for not matching the signed state: its listed version.
                let m = self.manifest.as_ref()?;
                m.body()
                    .values
                    .get(name)
                    .and_then(|v| i64::try_from(v.version).ok())
            });
        let deleted = self
            .deleted
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.version);
        live.or(deleted).unwrap_or(0) + 1
    }

    /// The manifest to send with `writes` (name, new version, sealed value or `None` for a
    /// delete): the verified manifest's successor with those changes, signed by this writer.
    /// `None` for an environment that has no signed state yet and a writer who may not seal
    /// it (a warning says so). The local vault's environments are sealed when opened.
    pub(crate) fn next_manifest(
        &self,
        ctx: &Context,
        t: &Target,
        writes: &[(String, i64, Option<Blob>)],
    ) -> Result<Option<ManifestRecord>> {
        let Some(signer) = &self.signer else {
            if self.manifest.is_some() {
                return Err(not_a_writer(t).into());
            }
            return Ok(None);
        };
        let (mut body, anchor) = if let Some(m) = &self.manifest {
            (m.next_body(signer.principal, signer.roster), false)
        } else {
            if !signer.admin {
                ctx.printer.warn(&format!(
                    "{} has no signed state yet: this write is not signed; an owner or admin seals it with `klef env seal {}`",
                    t.describe(),
                    t.env.slug
                ));
                return Ok(None);
            }
            (self.sealing_body(t, signer), true)
        };
        for (name, version, ciphertext) in writes {
            match ciphertext {
                Some(ct) => {
                    let version = u64::try_from(*version)
                        .map_err(|_| Failure::other(format!("{name}: a version out of range")))?;
                    body.values
                        .insert(name.clone(), ValueRef::new(version, ct.as_bytes()));
                }
                None => {
                    body.values.remove(name);
                }
            }
        }
        let revision = body.revision;
        Ok(Some(record(&body.sign(&signer.key), anchor, revision)))
    }

    /// The manifest of a key rotation to `new_key`: key version + 1 and its commitment, every
    /// live value at `versions` (name, new version, new ciphertext), signed by an owner or
    /// admin.
    pub(crate) fn rotation_manifest(
        &self,
        t: &Target,
        new_key: &SymmetricKey,
        values: &[(String, i64, Blob)],
    ) -> Result<Option<ManifestRecord>> {
        let signer = match &self.signer {
            Some(s) if s.admin => s,
            Some(_) | None if self.manifest.is_none() => return Ok(None),
            _ => {
                return Err(Failure::permission(format!(
                    "only an owner or admin can rotate the key of {}",
                    t.describe()
                ))
                .into());
            }
        };
        let mut body = if let Some(m) = &self.manifest {
            m.rotation_body(new_key, signer.principal, signer.roster)
        } else {
            let key_version = u64::try_from(t.env.key_version + 1).unwrap_or(1);
            ManifestBody::first(
                &expected(t),
                new_key,
                key_version,
                signer.roster,
                signer.principal,
            )
        };
        body.values = values
            .iter()
            .map(|(name, version, ct)| {
                (
                    name.clone(),
                    ValueRef::new(u64::try_from(*version).unwrap_or(0), ct.as_bytes()),
                )
            })
            .collect();
        let revision = body.revision;
        Ok(Some(record(&body.sign(&signer.key), true, revision)))
    }

    /// Writes `writes` with the environment's next manifest in one request: each write gets
    /// the version after the name's latest (a write without an expected version is pinned to
    /// it, so a concurrent writer makes it fail with a conflict instead of slipping under the
    /// signature), and the new head is recorded once stored.
    pub(crate) async fn write(
        &mut self,
        ctx: &Context,
        b: &AnyBackend,
        t: &Target,
        writes: &mut [SecretWrite],
    ) -> Result<Vec<SecretVersion>> {
        self.write_from(ctx, b, t, writes, None).await
    }

    /// [`Opened::write`] of values copied from environment `from` (`klef promote`), which a
    /// server audits as a promotion.
    pub(crate) async fn write_from(
        &mut self,
        ctx: &Context,
        b: &AnyBackend,
        t: &Target,
        writes: &mut [SecretWrite],
        from: Option<&klef_core::ids::EnvironmentId>,
    ) -> Result<Vec<SecretVersion>> {
        let mut next: HashMap<String, i64> = HashMap::with_capacity(writes.len());
        let mut planned = Vec::with_capacity(writes.len());
        for w in writes.iter_mut() {
            let version = match next.get(&w.name) {
                Some(v) => *v,
                None => self.next_version(&w.name),
            };
            if w.expected_version.is_none() {
                w.expected_version = Some(version - 1);
            }
            planned.push((w.name.clone(), version, w.ciphertext.clone()));
            next.insert(w.name.clone(), version + 1);
        }
        let manifest = self.next_manifest(ctx, t, &planned)?;
        let written = match from {
            Some(from) => {
                b.promote_secrets(&t.env.id, from, writes, manifest.as_ref())
                    .await?
            }
            None => {
                b.write_secrets(&t.env.id, writes, manifest.as_ref())
                    .await?
            }
        };
        if let Some(m) = &manifest {
            self.written(t, m).await?;
        }
        Ok(written)
    }

    /// The manifest of a rename: the same state under a new project name or environment slug,
    /// signed by an owner or admin (readers check the names they asked for against it).
    /// `None` for an environment without signed state.
    pub(crate) fn renamed_manifest(
        &self,
        t: &Target,
        project_name: Option<&str>,
        slug: Option<&str>,
    ) -> Result<Option<ManifestRecord>> {
        let Some(m) = &self.manifest else {
            return Ok(None);
        };
        let signer = match &self.signer {
            Some(s) if s.admin => s,
            _ => {
                return Err(Failure::permission(format!(
                    "only an owner or admin can rename {}",
                    t.describe()
                ))
                .into());
            }
        };
        let mut body = m.next_body(signer.principal, signer.roster);
        if let Some(name) = project_name {
            name.clone_into(&mut body.project_name);
        }
        if let Some(slug) = slug {
            slug.clone_into(&mut body.environment_name);
        }
        let revision = body.revision;
        Ok(Some(record(&body.sign(&signer.key), true, revision)))
    }

    /// Records a manifest this command stored as the environment's new head.
    pub(crate) async fn written(&mut self, t: &Target, record: &ManifestRecord) -> Result<()> {
        let signed = to_signed(std::slice::from_ref(record))?;
        let hash = signed[0].hash();
        let body = ManifestBody::parse(&record.body.0)
            .map_err(|e| Failure::other(format!("a manifest this command made: {e}")))?;
        self.pins.record(
            &self.workspace,
            t,
            ManifestHead {
                revision: body.revision,
                hash,
                key_version: body.key_version,
            },
        )?;
        self.pins.save().await
    }
}

/// A member without write access, or a read-only system key.
fn not_a_writer(t: &Target) -> Failure {
    Failure::permission(format!(
        "you may not write {}: the workspace's signed roster does not let you",
        t.describe()
    ))
}

/// The first manifest of a new environment (revision 1, no values, a commitment to `key` at
/// key version 1), signed by its creating owner or admin.
pub(crate) fn first_record(
    project: &klef_core::model::Project,
    env: &klef_core::model::Environment,
    key: &SymmetricKey,
    signer: (&SigningKey, PrincipalId),
    roster: Option<RosterHead>,
) -> ManifestRecord {
    let key_version = u64::try_from(env.key_version).unwrap_or(1);
    let body = ManifestBody::first(
        &expected_of(project, env),
        key,
        key_version,
        roster,
        signer.1,
    );
    record(&body.sign(signer.0), true, 1)
}

/// Before principals are signed out of workspace `ws`'s roster (a member removed, a system key
/// revoked): every environment of `ws` whose newest manifest one of `leaving` signed gets a new
/// manifest with the same values, signed by this owner or admin. Readers refuse a newest
/// manifest whose signer was removed since (DESIGN.md §9.3), so without this the environment
/// would be unreadable until its next write. Returns the environments re-signed; one that
/// cannot be opened is named in a warning and left as it is.
pub(crate) async fn revouch(
    ctx: &Context,
    b: &AnyBackend,
    keys: &KeySource,
    ws: &WorkspaceId,
    leaving: &[PrincipalId],
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for project in b.projects(ws).await? {
        for env in Context::environments(b, &project).await? {
            let t = Target {
                project: project.clone(),
                env,
            };
            let mut opened =
                match open_with(ctx, b, &t, Purpose::Write, &ctx.global, Some(keys)).await {
                    Ok(o) => o,
                    Err(e) => {
                        ctx.printer
                            .warn(&format!("{} was not re-signed: {e:#}", t.describe()));
                        continue;
                    }
                };
            let Some(m) = &opened.manifest else {
                continue;
            };
            if !leaving.contains(&m.body().signer) {
                continue;
            }
            let Some(signer) = &opened.signer else {
                continue;
            };
            let body = m.next_body(signer.principal, signer.roster);
            let revision = body.revision;
            let record = record(&body.sign(&signer.key), false, revision);
            b.write_secrets(&t.env.id, &[], Some(&record))
                .await
                .with_context(|| format!("failed to re-sign {}", t.describe()))?;
            opened.written(&t, &record).await?;
            done.push(format!("{}/{}", t.project.name, t.env.slug));
        }
    }
    Ok(done)
}
