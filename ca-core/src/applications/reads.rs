//! Reading applications, their events, materials and orders: what the engine and eligibility
//! need of the workflow, and what the counter shows.

use crate::Ca;
use crate::Rule;
use crate::error::{CoreError, Result};
use crate::store::applications::{self as rows, AppEvent, Application, MaterialRecord, Order};
use crate::store::vocab::{AppId, AppState};

impl Ca {
    /// One application, or `None` when there is no such number.
    pub fn find_application(&self, id: AppId) -> Result<Option<Application>> {
        Ok(rows::get(&self.store.conn, id)?)
    }

    /// One application; an unknown number is refused.
    pub fn application(&self, id: AppId) -> Result<Application> {
        self.find_application(id)?.ok_or_else(|| {
            CoreError::refuse(
                Rule::UnknownApplication,
                format!("there is no application {id}"),
            )
        })
    }

    /// Applications, newest first, optionally only those in `state`.
    pub fn applications(&self, state: Option<AppState>) -> Result<Vec<Application>> {
        Ok(rows::list(&self.store.conn, state)?)
    }

    /// How many applications are in `state`.
    pub fn application_count(&self, state: AppState) -> Result<u64> {
        Ok(rows::count_by_state(&self.store.conn)?
            .into_iter()
            .find(|(s, _)| s == state.as_str())
            .map_or(0, |(_, n)| n))
    }

    /// The recorded steps of an application, oldest first.
    pub fn application_events(&self, id: AppId) -> Result<Vec<AppEvent>> {
        Ok(rows::events(&self.store.conn, id)?)
    }

    /// The materials handed in for an application.
    pub fn application_materials(&self, id: AppId) -> Result<Vec<MaterialRecord>> {
        Ok(rows::materials(&self.store.conn, id)?)
    }

    /// The required material kinds of the application's type not handed in yet.
    pub fn missing_materials(&self, app: &Application) -> Result<Vec<String>> {
        let have = self.application_materials(app.id)?;
        Ok(self
            .policies
            .get(app.cert_type)
            .materials
            .iter()
            .filter(|m| m.required && !have.iter().any(|h| h.kind == m.kind))
            .map(|m| m.kind.clone())
            .collect())
    }

    /// Orders, oldest first; only those of `app` when given.
    pub fn orders(&self, app: Option<AppId>) -> Result<Vec<Order>> {
        Ok(rows::orders(&self.store.conn, app)?)
    }

    /// The newest material of `kind` handed in for application `id`, with its content.
    pub fn material_of_kind(&self, id: AppId, kind: &str) -> Result<(MaterialRecord, Vec<u8>)> {
        let Some(m) = rows::materials(&self.store.conn, id)?
            .into_iter()
            .rev()
            .find(|m| m.kind == kind)
        else {
            return Err(CoreError::refuse_on(
                Rule::UnknownMaterial,
                "kind",
                format!(
                    "application {id} has no `{kind}` material (see `hljca materials list {id}`)"
                ),
            ));
        };
        let bytes = self.material_bytes(&m.sha256)?;
        Ok((m, bytes))
    }

    /// The content of the material with this SHA-256: from the database, where every site
    /// reads it; a home from before schema 14 may still have it as `<home>/materials/<sha256>`.
    pub fn material_bytes(&self, sha256_hex: &str) -> Result<Vec<u8>> {
        if let Some(bytes) = crate::store::blobs::get(&self.store.conn, sha256_hex)? {
            return Ok(bytes);
        }
        let legacy = self.home.dir().join("materials").join(sha256_hex);
        if legacy.is_file() {
            return std::fs::read(&legacy).map_err(CoreError::io("reading material", &legacy));
        }
        Err(CoreError::refuse(
            Rule::UnknownMaterial,
            format!("material {sha256_hex} is recorded but its content is not in the database"),
        ))
    }
}
