//! The PostgreSQL side of [`super::Db`]: the sync `postgres` client, statements prepared once
//! per connection (with `?N` rewritten to `$N`), values converted to and from SQLite's
//! storage classes by the column's and parameter's PostgreSQL type.

use std::collections::HashMap;
use std::time::Duration;

use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Statement};

use super::tls::{self, SslMode, TlsParams};
use super::{DbError, DbResult, Params, ValueRef};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Session settings of every connection: a statement, a lock wait (the write lock among them)
/// and an idle transaction end with an error instead of hanging behind a half-dead peer.
const SESSION: &str = "SET client_min_messages = warning; \
     SET statement_timeout = '300s'; SET lock_timeout = '60s'; \
     SET idle_in_transaction_session_timeout = '600s'";

/// Statements kept prepared per connection; the cache is emptied when it grows past this
/// (dynamic SQL, such as paged lists, makes a few variants).
const CACHE: usize = 256;

pub(super) struct Pg {
    client: Client,
    stmts: HashMap<String, Statement>,
    config: postgres::Config,
    tls: TlsParams,
    /// Inside BEGIN … COMMIT: a lost connection is then the transaction's error, never
    /// silently replaced.
    in_tx: bool,
}

/// The error's one line: PostgreSQL's own message when it sent one.
pub(super) fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

/// `?N` → `$N` (and a bare `?` → the next number), outside quoted text.
pub fn rewrite(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    let mut next = 1;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                if digits.is_empty() {
                    digits = next.to_string();
                }
                next = digits.parse::<usize>().unwrap_or(next) + 1;
                out.push('$');
                out.push_str(&digits);
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// A parameter bound as the type PostgreSQL inferred for it. Only lossless conversions are
/// made (an integer printed into a text column, an integer into a float column while it is
/// exact, text of digits into an integer column); anything that would lose information — a
/// real with a fraction into an integer column, an integer beyond 2^53 into a float — is an
/// error, never a silent truncation.
#[derive(Debug)]
struct Param<'a>(ValueRef<'a>);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let int = |v: ValueRef<'_>| -> Result<i64, Box<dyn std::error::Error + Sync + Send>> {
            match v {
                ValueRef::Integer(n) => Ok(n),
                ValueRef::Text(t) => Ok(t.parse::<i64>()?),
                ValueRef::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
                ValueRef::Real(f) => Err(format!("the real {f} is not an integer").into()),
                ValueRef::Blob(_) | ValueRef::Null => Err("a blob is not an integer".into()),
            }
        };
        let v = self.0;
        if v == ValueRef::Null {
            return Ok(IsNull::Yes);
        }
        match *ty {
            Type::INT8 => int(v)?.to_sql(ty, out),
            Type::INT4 => i32::try_from(int(v)?)?.to_sql(ty, out),
            Type::INT2 => i16::try_from(int(v)?)?.to_sql(ty, out),
            Type::BOOL => (int(v)? != 0).to_sql(ty, out),
            Type::FLOAT8 => match v {
                ValueRef::Real(f) => f.to_sql(ty, out),
                other => {
                    let n = int(other)?;
                    if n.unsigned_abs() > 1 << 53 {
                        return Err(format!("the integer {n} has no exact float").into());
                    }
                    (n as f64).to_sql(ty, out)
                }
            },
            Type::BYTEA => match v {
                ValueRef::Blob(b) => b.to_sql(ty, out),
                ValueRef::Text(t) => t.as_bytes().to_sql(ty, out),
                _ => Err("an integer is not a blob".into()),
            },
            _ => match v {
                ValueRef::Text(t) => t.to_sql(ty, out),
                ValueRef::Integer(n) => n.to_string().as_str().to_sql(ty, out),
                ValueRef::Real(f) => f.to_string().as_str().to_sql(ty, out),
                ValueRef::Blob(_) => Err(format!("a blob cannot be bound as {ty}").into()),
                ValueRef::Null => Ok(IsNull::Yes),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A column read as a storage class.
struct Col<'a>(ValueRef<'a>);

impl<'a> FromSql<'a> for Col<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Col(match *ty {
            Type::INT8 => ValueRef::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => ValueRef::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => ValueRef::Integer(i16::from_sql(ty, raw)?.into()),
            Type::OID => ValueRef::Integer(u32::from_sql(ty, raw)?.into()),
            Type::BOOL => ValueRef::Integer(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => ValueRef::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => ValueRef::Real(f32::from_sql(ty, raw)?.into()),
            Type::NUMERIC => numeric(raw)?,
            Type::BYTEA => ValueRef::Blob(raw),
            _ => ValueRef::Text(std::str::from_utf8(raw)?),
        }))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Col(ValueRef::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A NUMERIC (what `sum()` of a BIGINT column returns) as an integer, or a real when it has a
/// fraction.
fn numeric(raw: &[u8]) -> Result<ValueRef<'static>, Box<dyn std::error::Error + Sync + Send>> {
    let word = |i: usize| -> Result<i64, Box<dyn std::error::Error + Sync + Send>> {
        let b = raw.get(i * 2..i * 2 + 2).ok_or("short NUMERIC")?;
        Ok(i64::from(i16::from_be_bytes([b[0], b[1]])))
    };
    let (ndigits, weight, sign, dscale) = (word(0)?, word(1)?, word(2)?, word(3)?);
    let mut value = 0f64;
    let mut int: i128 = 0;
    for k in 0..ndigits {
        let d = word(4 + k as usize)?;
        let power = weight - k;
        value += d as f64 * 10000f64.powi(power as i32);
        if power >= 0 {
            int = int * 10000 + i128::from(d);
        }
    }
    if ndigits > 0 && weight >= ndigits {
        int *= 10000i128.pow((weight - ndigits + 1) as u32);
    }
    let negative = sign == 0x4000;
    if dscale == 0 {
        let n = i64::try_from(if negative { -int } else { int })?;
        return Ok(ValueRef::Integer(n));
    }
    Ok(ValueRef::Real(if negative { -value } else { value }))
}

/// Opens one connection: TLS as `tls` says (none over a Unix socket, where PostgreSQL has
/// none), the session settings and the temporary table the row binding records into.
fn open(config: &postgres::Config, tls: &TlsParams) -> DbResult<Client> {
    let unix_only = config
        .get_hosts()
        .iter()
        .all(|h| matches!(h, postgres::config::Host::Unix(_)));
    let mut client = if tls.mode == SslMode::Disable || unix_only {
        config.connect(NoTls)?
    } else {
        let make = tokio_postgres_rustls::MakeRustlsConnect::new(tls.client_config()?);
        config.connect(make)?
    };
    client.batch_execute(&format!(
        "{SESSION}; CREATE TEMP TABLE IF NOT EXISTS changed_rows (tbl TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (tbl, key))"
    ))?;
    Ok(client)
}

pub(super) fn get_ref(r: &postgres::Row, i: usize) -> DbResult<ValueRef<'_>> {
    r.try_get::<_, Col<'_>>(i)
        .map(|c| c.0)
        .map_err(|e| DbError::Column {
            index: i,
            reason: describe(&e),
        })
}

impl Pg {
    pub(super) fn connect(url: &str) -> DbResult<Pg> {
        let (rest, tls) = tls::split(url)?;
        let mut config: postgres::Config = rest
            .parse()
            .map_err(|e| DbError::Other(format!("database URL: {}", describe(&e))))?;
        config.ssl_mode(tls.crate_mode());
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A peer that vanished (a cut link, a crashed host) is noticed within a minute or so.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        config.keepalives_interval(Duration::from_secs(10));
        config.keepalives_retries(3);
        if config.get_application_name().is_none() {
            config.application_name("hljca");
        }
        let local = config.get_hosts().iter().all(tls::is_local);
        if !local
            && matches!(tls.mode, SslMode::Disable | SslMode::Prefer)
            && std::env::var("HLJCA_DATABASE_PLAINTEXT").as_deref() != Ok("allow")
        {
            return Err(DbError::Other(format!(
                "the database is on another host and sslmode={} would let resident IDs, mobiles \
                 and audit signatures cross the network in clear: use \
                 sslmode=verify-full&sslrootcert=FILE (or set HLJCA_DATABASE_PLAINTEXT=allow on a \
                 trusted network) [rule: database-tls]",
                if tls.mode == SslMode::Disable {
                    "disable"
                } else {
                    "prefer (the default)"
                }
            )));
        }
        let client = open(&config, &tls)?;
        Ok(Pg {
            client,
            stmts: HashMap::new(),
            config,
            tls,
            in_tx: false,
        })
    }

    /// Names this connection for the server's views (`pg_stat_activity`): `hljca-<site>`.
    pub(super) fn set_application_name(&mut self, name: &str) -> DbResult<()> {
        self.config.application_name(name);
        let quoted = name.replace('\'', "''");
        self.batch(&format!("SET application_name = '{quoted}'"))
    }

    /// Outside a transaction, a connection the server closed (a restart, a failover) is
    /// replaced by a new one; inside one, its loss is the transaction's error.
    fn ready(&mut self) -> DbResult<()> {
        if self.client.is_closed() && !self.in_tx {
            self.reconnect()?;
        }
        Ok(())
    }

    fn reconnect(&mut self) -> DbResult<()> {
        tracing::warn!("the database connection was lost; connecting again");
        self.client = open(&self.config, &self.tls)?;
        self.stmts.clear();
        Ok(())
    }

    /// Runs `f`, and once more on a new connection when the first try found the connection
    /// closed outside a transaction (nothing of it can have been applied).
    fn retrying<T>(&mut self, mut f: impl FnMut(&mut Pg) -> DbResult<T>) -> DbResult<T> {
        self.ready()?;
        match f(self) {
            Err(e) if !self.in_tx && self.client.is_closed() => {
                tracing::debug!(error = %e, "statement failed on a closed connection");
                self.reconnect()?;
                f(self)
            }
            other => other,
        }
    }

    fn prepare(&mut self, sql: &str) -> DbResult<Statement> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        if self.stmts.len() >= CACHE {
            self.stmts.clear();
        }
        let stmt = self.client.prepare(&rewrite(sql))?;
        self.stmts.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    fn args<'a>(params: Params<'a>) -> Vec<Param<'a>> {
        params.iter().map(|p| Param(p.to_sql())).collect()
    }

    pub(super) fn execute(&mut self, sql: &str, params: Params<'_>) -> DbResult<usize> {
        self.retrying(|pg| {
            let stmt = pg.prepare(sql)?;
            let args = Self::args(params);
            let refs: Vec<&(dyn ToSql + Sync)> =
                args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
            Ok(pg.client.execute(&stmt, &refs)? as usize)
        })
    }

    pub(super) fn query(&mut self, sql: &str, params: Params<'_>) -> DbResult<Vec<postgres::Row>> {
        self.retrying(|pg| {
            let stmt = pg.prepare(sql)?;
            let args = Self::args(params);
            let refs: Vec<&(dyn ToSql + Sync)> =
                args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
            Ok(pg.client.query(&stmt, &refs)?)
        })
    }

    pub(super) fn for_each<E: From<DbError>>(
        &mut self,
        sql: &str,
        params: Params<'_>,
        mut f: impl FnMut(&postgres::Row) -> Result<(), E>,
    ) -> Result<(), E> {
        use postgres::fallible_iterator::FallibleIterator;
        self.ready()?;
        let stmt = self.prepare(sql)?;
        let args = Self::args(params);
        let mut rows = self
            .client
            .query_raw(&stmt, args.iter())
            .map_err(DbError::from)?;
        while let Some(r) = rows.next().map_err(DbError::from)? {
            f(&r)?;
        }
        Ok(())
    }

    pub(super) fn batch(&mut self, sql: &str) -> DbResult<()> {
        let head = sql.trim_start();
        if head.starts_with("COMMIT") || head.starts_with("ROLLBACK") {
            self.in_tx = false;
            return Ok(self.client.batch_execute(sql)?);
        }
        if head.starts_with("BEGIN") {
            self.ready()?;
            self.in_tx = true;
            return Ok(self.client.batch_execute(sql)?);
        }
        self.retrying(|pg| Ok(pg.client.batch_execute(sql)?))
    }

    pub(super) fn begin_write(&mut self) -> DbResult<()> {
        self.batch(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({}); SET LOCAL hljca.bind = 'on'",
            super::WRITE_LOCK
        ))
        .inspect_err(|_| {
            let _ = self.client.batch_execute("ROLLBACK");
            self.in_tx = false;
        })
    }

    pub(super) fn probe_write(&mut self, wait: Duration) -> DbResult<()> {
        self.ready()?;
        let r = self.client.batch_execute(&format!(
            "BEGIN; SET LOCAL lock_timeout = '{}ms'; SELECT pg_advisory_xact_lock({}); ROLLBACK",
            wait.as_millis().max(1),
            super::WRITE_LOCK
        ));
        if r.is_err() {
            let _ = self.client.batch_execute("ROLLBACK");
        }
        Ok(r?)
    }

    /// Tries the session-level advisory lock `key` (a lease); true when taken.
    pub(super) fn try_lock(&mut self, key: i64) -> DbResult<bool> {
        self.ready()?;
        let row = self
            .client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])?;
        Ok(row.get(0))
    }

    /// Releases the session-level advisory lock `key`.
    pub(super) fn unlock(&mut self, key: i64) -> DbResult<()> {
        self.client
            .query_one("SELECT pg_advisory_unlock($1)", &[&key])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_quotes() {
        assert_eq!(
            rewrite("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND d = ?12 OR e = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND d = $12 OR e = $13"
        );
    }

    #[test]
    fn numerics_decode() {
        // 123456789 = [1, 2345, 6789] base 10000, weight 2.
        let mut raw = vec![];
        for w in [3i16, 2, 0, 0, 1, 2345, 6789] {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        assert_eq!(numeric(&raw).unwrap(), ValueRef::Integer(123456789));
        // 20000 = [2] weight 1.
        let mut raw = vec![];
        for w in [1i16, 1, 0, 0, 2] {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        assert_eq!(numeric(&raw).unwrap(), ValueRef::Integer(20000));
    }

    #[test]
    fn parameters_convert_only_without_loss() {
        let bind = |v: ValueRef<'_>, ty: &Type| {
            let mut out = bytes::BytesMut::new();
            Param(v).to_sql(ty, &mut out).map(|_| out.to_vec())
        };
        let cases: [(ValueRef<'_>, Type, bool); 8] = [
            (ValueRef::Integer(7), Type::INT8, true),
            (ValueRef::Real(7.0), Type::INT8, true),
            (ValueRef::Real(7.9), Type::INT8, false),
            (ValueRef::Text("42"), Type::INT8, true),
            (ValueRef::Text(" 42"), Type::INT8, false),
            (ValueRef::Integer(1 << 53), Type::FLOAT8, true),
            (ValueRef::Integer((1 << 53) + 1), Type::FLOAT8, false),
            (ValueRef::Integer(3_000_000_000), Type::INT4, false),
        ];
        for (v, ty, ok) in cases {
            assert_eq!(bind(v, &ty).is_ok(), ok, "{v:?} as {ty}");
        }
        assert_eq!(
            bind(ValueRef::Real(7.0), &Type::INT8).ok(),
            Some(7i64.to_be_bytes().to_vec())
        );
    }
}
