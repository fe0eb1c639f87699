//! Server-side sessions: a random id in an HttpOnly, SameSite=Strict cookie; the session holds
//! its CSRF token, the logged-in account, the pending captcha and single-use form tokens.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cookie::{Cookie, SameSite};
use rand_core::{OsRng, RngCore};

use crate::view::Lang;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "hljca_portal";
/// A session unused this long is forgotten.
const IDLE: Duration = Duration::from_secs(2 * 3600);
/// Most sessions kept at once (the oldest idle ones go first).
const MAX_SESSIONS: usize = 20_000;

/// A random token, 32 bytes as hex.
pub(crate) fn token() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A random number below `n`.
pub(crate) fn below(n: u32) -> u32 {
    OsRng.next_u32() % n.max(1)
}

/// One visitor's session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub id: String,
    pub csrf: String,
    pub lang: Lang,
    /// The logged-in account and its login.
    pub account: Option<(i64, String)>,
    /// The captcha shown last: its id (a hidden field of the form) and answer; single use.
    pub captcha: Option<(String, u32)>,
    /// Tokens of forms shown and not yet submitted (double submission).
    pub forms: HashSet<String>,
    /// A single sign-on in progress: its state and nonce.
    pub sso: Option<(String, String)>,
    last: Instant,
}

/// Every session.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Session>) -> T) -> T {
        let mut map = match self.map.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        f(&mut map)
    }

    /// The session with this id, if it is alive.
    pub fn get(&self, id: &str) -> Option<Session> {
        self.with(|m| {
            let s = m.get_mut(id)?;
            if s.last.elapsed() > IDLE {
                m.remove(id);
                return None;
            }
            s.last = Instant::now();
            Some(s.clone())
        })
    }

    /// A new anonymous session.
    pub fn create(&self, lang: Lang) -> Session {
        let s = Session {
            id: token(),
            csrf: token(),
            lang,
            account: None,
            captcha: None,
            forms: HashSet::new(),
            sso: None,
            last: Instant::now(),
        };
        self.with(|m| {
            if m.len() >= MAX_SESSIONS {
                m.retain(|_, v| v.last.elapsed() <= IDLE);
                if m.len() >= MAX_SESSIONS
                    && let Some(oldest) = m.values().min_by_key(|v| v.last).map(|v| v.id.clone())
                {
                    m.remove(&oldest);
                }
            }
            m.insert(s.id.clone(), s.clone());
        });
        s
    }

    /// Changes a session.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Session)) {
        self.with(|m| {
            if let Some(s) = m.get_mut(id) {
                f(s);
            }
        });
    }

    /// Takes the captcha id and answer (single use).
    pub fn take_captcha(&self, id: &str) -> Option<(String, u32)> {
        self.with(|m| m.get_mut(id).and_then(|s| s.captcha.take()))
    }

    /// Takes a form token (single use); false when it was not issued or already used.
    pub fn take_form(&self, id: &str, form: &str) -> bool {
        self.with(|m| m.get_mut(id).is_some_and(|s| s.forms.remove(form)))
    }

    /// Logs a session in: a new id (no fixation) with a new CSRF token.
    pub fn login(&self, old: &str, account: i64, login: &str) -> Session {
        self.with(|m| {
            let lang = m.remove(old).map(|s| s.lang).unwrap_or_default();
            let s = Session {
                id: token(),
                csrf: token(),
                lang,
                account: Some((account, login.to_owned())),
                captcha: None,
                forms: HashSet::new(),
                sso: None,
                last: Instant::now(),
            };
            m.insert(s.id.clone(), s.clone());
            s
        })
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.with(|m| {
            m.remove(id);
        });
    }
}

/// The session cookie: HttpOnly, SameSite=Strict, Path=/, `Secure` when configured.
pub(crate) fn set_cookie(id: &str, secure: bool) -> Cookie<'static> {
    Cookie::build((COOKIE, id.to_owned()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .build()
}

/// The cookie that ends a session in the browser (empty, `Max-Age=0`).
pub(crate) fn clear_cookie() -> Cookie<'static> {
    Cookie::build((COOKIE, ""))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::ZERO)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_keep_their_attributes() {
        let c = set_cookie("ab12", false).to_string();
        for part in ["hljca_portal=ab12", "Path=/", "HttpOnly", "SameSite=Strict"] {
            assert!(c.split("; ").any(|p| p == part), "{part} in {c}");
        }
        assert!(!c.contains("Secure"), "{c}");
        assert!(set_cookie("ab12", true).to_string().contains("; Secure"));
        let gone = clear_cookie().to_string();
        for part in [
            "hljca_portal=",
            "Path=/",
            "HttpOnly",
            "SameSite=Strict",
            "Max-Age=0",
        ] {
            assert!(gone.split("; ").any(|p| p == part), "{part} in {gone}");
        }
        let mut h = hyper::HeaderMap::new();
        h.append(
            hyper::header::COOKIE,
            "a=1; hljca_portal=xyz".parse().unwrap(),
        );
        assert_eq!(crate::web::cookie(&h, COOKIE).as_deref(), Some("xyz"));
        assert_eq!(crate::web::cookie(&h, "b"), None);
    }
}
