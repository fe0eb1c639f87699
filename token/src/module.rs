//! The PKCS#11 module: loading it, listing tokens, initialising a blank token, opening sessions.

use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::UserType;
use cryptoki::slot::Slot;
use serde::Serialize;

use crate::Result;
use crate::error::{PinRole, TokenError};
use crate::login::{LoginState, LoginTable, Logins, digests_equal};
use crate::pin::{Pin, PinState};
use crate::quirks::{LOGIN_RETRIES, ModuleOptions, SoftHsm, default_lock_path};
use crate::session::TokenSession;

/// Where SoftHSM2's module is found on Debian and friends, in the order tried.
pub fn default_module_candidates() -> Vec<PathBuf> {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
        "/usr/lib64/pkcs11/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .collect()
}

/// How a command names a token: by label or by serial number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSelector(pub String);

impl std::fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a slot's token says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    /// PKCS#11 slot id (not stable across SoftHSM re-initialisation: prefer label or serial).
    pub slot_id: u64,
    /// Token label.
    pub label: String,
    /// Token serial number.
    pub serial: String,
    /// Manufacturer id.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// The token has been initialised (has an SO PIN and a label).
    pub initialized: bool,
    /// User PIN state.
    pub user_pin: PinState,
    /// SO PIN state.
    pub so_pin: PinState,
    /// Minimum PIN length the token accepts.
    pub min_pin_len: usize,
    /// Maximum PIN length the token accepts.
    pub max_pin_len: usize,
    #[serde(skip)]
    pub(crate) slot: Slot,
}

/// A loaded, initialised PKCS#11 module.
///
/// The module remembers which tokens it is logged in to (PKCS#11 login state is shared by all
/// sessions of the process on a token), so that a wrong PIN always fails even while another
/// session is logged in, and so that dropping one session does not log out the others.
pub struct Module {
    ctx: Pkcs11,
    path: PathBuf,
    logins: Logins,
    /// The SoftHSM workarounds, when they are on for this module.
    softhsm: Option<SoftHsm>,
    /// How deep this process is inside [`Module::serialized`], and the lock file while it is.
    store_lock_held: std::sync::Mutex<(usize, Option<std::fs::File>)>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("path", &self.path).finish()
    }
}

impl Module {
    /// Loads the module at `path`, or the first SoftHSM2 module found in the usual places, with
    /// automatic quirks and the lock at [`default_lock_path`] (no home).
    pub fn open(path: Option<&Path>) -> Result<Module> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => Self::discover()?,
        };
        let options = ModuleOptions::with_lock(default_lock_path(&path));
        Module::open_with(Some(&path), &options)
    }

    /// Loads the module at `path` (or SoftHSM2 from the usual places) with `options`.
    pub fn open_with(path: Option<&Path>, options: &ModuleOptions) -> Result<Module> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => Self::discover()?,
        };
        if !path.exists() {
            return Err(TokenError::ModuleNotFound { tried: vec![path] });
        }
        let load = |e| TokenError::ModuleLoad {
            path: path.clone(),
            source: e,
        };
        let ctx = Pkcs11::new(&path).map_err(load)?;
        let module = Module {
            ctx,
            path: path.clone(),
            logins: LoginTable::new(),
            softhsm: options.softhsm(&path),
            store_lock_held: std::sync::Mutex::new((0, None)),
        };
        // C_Initialize reads every token file: not while another process rewrites one.
        module.serialized(|| {
            module
                .ctx
                .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
                .map_err(load)
        })?;
        Ok(module)
    }

    /// With the SoftHSM quirks on, runs `f` holding the store lock shared by every hljca process
    /// using this token store (see [`crate::QuirksMode`]); otherwise just runs it. Nested calls
    /// take the lock once.
    fn serialized<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let Some(quirks) = &self.softhsm else {
            return f();
        };
        {
            let mut held = self
                .store_lock_held
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if held.0 == 0 {
                held.1 = Some(quirks.take()?);
            }
            held.0 += 1;
        }
        let out = f();
        let mut held = self
            .store_lock_held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        held.0 = held.0.saturating_sub(1);
        if held.0 == 0 {
            held.1 = None;
        }
        out
    }

    /// True when the SoftHSM workarounds are on for this module.
    pub fn softhsm_quirks(&self) -> bool {
        self.softhsm.is_some()
    }

    /// The first SoftHSM2 module present on this machine.
    pub fn discover() -> Result<PathBuf> {
        let tried = default_module_candidates();
        tried
            .iter()
            .find(|p| p.exists())
            .cloned()
            .ok_or(TokenError::ModuleNotFound { tried })
    }

    /// The module's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every slot that has a token, initialised or not.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>> {
        self.serialized(|| self.tokens_locked())
    }

    fn tokens_locked(&self) -> Result<Vec<TokenInfo>> {
        let slots = self
            .ctx
            .get_slots_with_token()
            .map_err(|e| TokenError::pkcs11("C_GetSlotList", "*", e))?;
        let mut out = Vec::with_capacity(slots.len());
        for slot in slots {
            // Another process may be initialising a token in this very slot (SoftHSM's file
            // store is shared between processes): its info is unreadable for a moment. Try
            // again briefly, then leave that one slot out rather than failing every command.
            let mut tries = 0;
            loop {
                match self.info(slot) {
                    Ok(i) => {
                        out.push(i);
                        break;
                    }
                    Err(e) if self.softhsm.is_some() && tries < 20 => {
                        tracing::debug!(slot = slot.id(), error = %e, "token info unreadable, retrying");
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(25));
                    }
                    Err(e) if self.softhsm.is_some() => {
                        tracing::warn!(slot = slot.id(), error = %e, "token info unreadable; slot skipped");
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn info(&self, slot: Slot) -> Result<TokenInfo> {
        let i = self
            .ctx
            .get_token_info(slot)
            .map_err(|e| TokenError::pkcs11("C_GetTokenInfo", &format!("slot {}", slot.id()), e))?;
        Ok(TokenInfo {
            slot_id: slot.id(),
            label: i.label().trim_end().to_owned(),
            serial: i.serial_number().trim_end().to_owned(),
            manufacturer: i.manufacturer_id().trim_end().to_owned(),
            model: i.model().trim_end().to_owned(),
            initialized: i.token_initialized(),
            user_pin: PinState::user(&i),
            so_pin: PinState::so(&i),
            min_pin_len: i.min_pin_length(),
            max_pin_len: i.max_pin_length(),
            slot,
        })
    }

    /// The one initialised token whose label or serial is `sel`.
    pub fn find(&self, sel: &TokenSelector) -> Result<TokenInfo> {
        let all = self.tokens()?;
        let by_serial: Vec<_> = all
            .iter()
            .filter(|t| t.initialized && t.serial == sel.0)
            .collect();
        if let [one] = by_serial.as_slice() {
            return Ok((*one).clone());
        }
        let by_label: Vec<_> = all
            .iter()
            .filter(|t| t.initialized && t.label == sel.0)
            .collect();
        match by_label.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(TokenError::TokenNotFound {
                selector: sel.0.clone(),
                present: present_list(&all),
            }),
            many => Err(TokenError::Ambiguous {
                selector: sel.0.clone(),
                count: many.len(),
            }),
        }
    }

    /// Initialises the first blank token with `label`, sets its SO PIN and user PIN.
    pub fn init_token(&self, label: &str, so_pin: &Pin, user_pin: &Pin) -> Result<TokenInfo> {
        check_label(label)?;
        // One initialisation at a time among processes: two could otherwise both take the
        // one blank slot SoftHSM offers.
        self.serialized(|| self.init_token_locked(label, so_pin, user_pin))
    }

    fn init_token_locked(&self, label: &str, so_pin: &Pin, user_pin: &Pin) -> Result<TokenInfo> {
        let all = self.tokens()?;
        if let Some(t) = all.iter().find(|t| t.initialized && t.label == label) {
            return Err(TokenError::LabelInUse {
                label: label.to_owned(),
                serial: t.serial.clone(),
            });
        }
        let blank = all
            .iter()
            .find(|t| !t.initialized)
            .ok_or(TokenError::NoFreeSlot)?;
        for (pin, role) in [
            (so_pin, PinRole::SecurityOfficer),
            (user_pin, PinRole::User),
        ] {
            if pin.len() < blank.min_pin_len.max(4) || pin.len() > blank.max_pin_len {
                return Err(TokenError::PinLength {
                    token: label.to_owned(),
                    role,
                    min: blank.min_pin_len.max(4),
                    max: blank.max_pin_len,
                });
            }
        }
        self.ctx
            .init_token(blank.slot, &so_pin.auth(), label)
            .map_err(|e| TokenError::pkcs11("C_InitToken", label, e))?;
        // SoftHSM moves the freshly initialised token to a new slot id: look it up again.
        let token = self
            .tokens()?
            .into_iter()
            .find(|t| t.initialized && t.label == label)
            .ok_or_else(|| TokenError::TokenNotFound {
                selector: label.to_owned(),
                present: "none after C_InitToken".into(),
            })?;
        let session = self
            .ctx
            .open_rw_session(token.slot)
            .map_err(|e| TokenError::pkcs11("C_OpenSession", label, e))?;
        session
            .login(UserType::So, Some(&so_pin.auth()))
            .map_err(|e| TokenError::pkcs11("C_Login(SO)", label, e))?;
        session
            .init_pin(&user_pin.auth())
            .map_err(|e| TokenError::pkcs11("C_InitPIN", label, e))?;
        let _ = session.logout();
        drop(session);
        self.info(token.slot)
    }

    /// Opens a read-write session on the token and logs in as its user.
    ///
    /// If a session of this module is already logged in to the token, the PIN is checked
    /// against the one that logged in (the token itself would accept any PIN then): a different
    /// PIN fails with [`TokenError::PinIncorrect`], the same one shares the login.
    pub fn login(&self, sel: &TokenSelector, pin: &Pin) -> Result<TokenSession> {
        let info = self.find(sel)?;
        self.login_as(info, UserType::User, pin)
    }

    /// Opens a read-write session and logs in as security officer (for unblocking a PIN).
    /// Checked like [`Self::login`] when this module is already logged in to the token.
    pub fn login_so(&self, sel: &TokenSelector, so_pin: &Pin) -> Result<TokenSession> {
        let info = self.find(sel)?;
        self.login_as(info, UserType::So, so_pin)
    }

    fn login_as(&self, info: TokenInfo, who: UserType, pin: &Pin) -> Result<TokenSession> {
        let role = match who {
            UserType::So => PinRole::SecurityOfficer,
            _ => PinRole::User,
        };
        let digest = self.logins.digest(pin);
        // Held until the session is counted, so two threads cannot both find the token logged
        // out and both call C_Login.
        let mut logins = self.logins.lock();
        if let Some(held) = logins.get_mut(&info.slot_id) {
            if held.role != role {
                // What C_Login would answer, without giving the token a PIN to count.
                return Err(TokenError::pkcs11(
                    "C_Login",
                    &info.label,
                    CkError::Pkcs11(RvError::UserAnotherAlreadyLoggedIn, Function::Login),
                ));
            }
            if !digests_equal(&held.pin_digest, &digest) {
                drop(logins);
                return Err(self.pin_incorrect(info, role));
            }
            let session = self
                .ctx
                .open_rw_session(info.slot)
                .map_err(|e| TokenError::pkcs11("C_OpenSession", &info.label, e))?;
            held.sessions += 1;
            return Ok(TokenSession::new(session, info, self.logins.clone()));
        }
        let session = self
            .ctx
            .open_rw_session(info.slot)
            .map_err(|e| TokenError::pkcs11("C_OpenSession", &info.label, e))?;
        // SoftHSM's file store is rewritten in place by other processes (another token
        // initialised, a PIN changed): a login that reads it mid-write is told the user PIN is
        // not initialised. Logins are serialised between hljca processes, and that answer
        // (which uses up no PIN try) is asked again a few times for other writers.
        let retries = if self.softhsm.is_some() {
            LOGIN_RETRIES
        } else {
            0
        };
        let answer = self.serialized(|| {
            let mut answer = session.login(who, Some(&pin.auth()));
            for _ in 0..retries {
                if !matches!(
                    answer,
                    Err(CkError::Pkcs11(
                        RvError::UserPinNotInitialized | RvError::GeneralError,
                        _
                    ))
                ) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
                answer = session.login(who, Some(&pin.auth()));
            }
            Ok(answer)
        })?;
        match answer {
            Ok(()) => {}
            // Logged in by someone outside this module's record (another Module on the same
            // library, or a caller of the raw cryptoki context): the token did not check the
            // PIN, so this is no success.
            Err(e @ CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                return Err(TokenError::pkcs11("C_Login", &info.label, e));
            }
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                drop(logins);
                return Err(self.pin_incorrect(info, role));
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                return Err(TokenError::PinLocked {
                    token: info.label,
                    role,
                });
            }
            Err(CkError::Pkcs11(RvError::PinLenRange, _)) => {
                return Err(TokenError::PinLength {
                    token: info.label,
                    role,
                    min: info.min_pin_len,
                    max: info.max_pin_len,
                });
            }
            Err(e) => return Err(TokenError::pkcs11("C_Login", &info.label, e)),
        }
        logins.insert(
            info.slot_id,
            LoginState {
                role,
                sessions: 1,
                pin_digest: digest,
            },
        );
        Ok(TokenSession::new(session, info, self.logins.clone()))
    }

    /// The error for a wrong PIN, with the token's PIN counters as they are now.
    fn pin_incorrect(&self, info: TokenInfo, role: PinRole) -> TokenError {
        let after = match self.info(info.slot) {
            Ok(after) => after,
            Err(e) => return e,
        };
        TokenError::PinIncorrect {
            token: info.label,
            role,
            state: if role == PinRole::User {
                after.user_pin
            } else {
                after.so_pin
            },
        }
    }
}

fn present_list(all: &[TokenInfo]) -> String {
    let names: Vec<String> = all
        .iter()
        .filter(|t| t.initialized)
        .map(|t| format!("{} [{}]", t.label, t.serial))
        .collect();
    if names.is_empty() {
        "no initialised tokens".into()
    } else {
        names.join(", ")
    }
}

fn check_label(label: &str) -> Result<()> {
    let bad = |rule| {
        Err(TokenError::BadLabel {
            label: label.to_owned(),
            rule,
        })
    };
    if label.trim().is_empty() {
        return bad("must not be empty");
    }
    if label.len() > 32 {
        return bad("at most 32 bytes (PKCS#11 CK_TOKEN_INFO.label)");
    }
    if label.chars().any(char::is_control) || label != label.trim() {
        return bad("no control characters or surrounding spaces");
    }
    Ok(())
}
