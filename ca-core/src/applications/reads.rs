//! Reading applications, their events, materials and orders: what the engine and eligibility
//! need of the workflow, and what the counter shows.

use crate::Ca;
use crate::Rule;
use crate::error::{CoreError, Result};
use crate::home::{create_private_dir, write_file};
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

    /// Where `materials add` stores a file with this SHA-256.
    pub fn material_path(&self, sha256_hex: &str) -> std::path::PathBuf {
        self.home.dir().join("materials").join(sha256_hex)
    }

    /// Writes a checked material file content-addressed under `<home>/materials/` (0600).
    /// Written before the row that refers to it, so a row always has its file; a file without a
    /// row (a failed commit) is harmless and reused by the next attempt.
    pub fn store_material_file(
        &self,
        sha256_hex: &str,
        bytes: &[u8],
    ) -> Result<std::path::PathBuf> {
        create_private_dir(&self.home.dir().join("materials"))?;
        let path = self.material_path(sha256_hex);
        if !path.is_file() {
            write_file(&path, bytes, 0o600)?;
        }
        Ok(path)
    }
}
