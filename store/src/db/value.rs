//! Backend-neutral values: what a parameter binds and what a column reads, with SQLite's four
//! storage classes (NULL, INTEGER, TEXT, BLOB; REAL only read). Both backends map onto these,
//! so a row reads the same — and digests the same — on SQLite and PostgreSQL.

/// A column value borrowed from a row, or a parameter borrowed from the caller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// SQL NULL.
    Null,
    /// A 64-bit integer (booleans read as 0/1).
    Integer(i64),
    /// A floating-point number (never written by hljca; read for completeness).
    Real(f64),
    /// UTF-8 text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

/// An owned value (database copies, dynamic parameter lists).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl ValueRef<'_> {
    /// An owned copy.
    pub fn to_owned(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(n) => Value::Integer(n),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(t.to_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }

    fn kind(self) -> &'static str {
        match self {
            ValueRef::Null => "NULL",
            ValueRef::Integer(_) => "an integer",
            ValueRef::Real(_) => "a real",
            ValueRef::Text(_) => "text",
            ValueRef::Blob(_) => "a blob",
        }
    }
}

/// Something a statement parameter can be.
pub trait ToSql {
    /// The value to bind.
    fn to_sql(&self) -> ValueRef<'_>;
}

/// Something a column can be read as.
pub trait FromSql: Sized {
    /// Converts the column value, or says why not.
    fn from_sql(v: ValueRef<'_>) -> Result<Self, String>;
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_sql(&self) -> ValueRef<'_> {
        (**self).to_sql()
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_sql(&self) -> ValueRef<'_> {
        match self {
            Some(v) => v.to_sql(),
            None => ValueRef::Null,
        }
    }
}

impl ToSql for str {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}

impl ToSql for String {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}

impl ToSql for [u8] {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Blob(self)
    }
}

impl ToSql for Vec<u8> {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Blob(self)
    }
}

impl ToSql for bool {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Integer(i64::from(*self))
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Integer(n) => ValueRef::Integer(*n),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(t) => ValueRef::Text(t),
            Value::Blob(b) => ValueRef::Blob(b),
        }
    }
}

macro_rules! int_to_sql {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> ValueRef<'_> {
                // Every integer hljca stores fits an i64 (ids, counts, fen, pids).
                ValueRef::Integer(*self as i64)
            }
        }
        impl FromSql for $t {
            fn from_sql(v: ValueRef<'_>) -> Result<Self, String> {
                let n = i64::from_sql(v)?;
                <$t>::try_from(n).map_err(|_| format!("{n} does not fit {}", stringify!($t)))
            }
        }
    )*};
}
int_to_sql!(i32, u32, u8, u16, u64, usize);

impl ToSql for i64 {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Integer(*self)
    }
}

impl FromSql for i64 {
    fn from_sql(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Integer(n) => Ok(n),
            other => Err(format!("expected an integer, found {}", other.kind())),
        }
    }
}

impl FromSql for f64 {
    fn from_sql(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Real(f) => Ok(f),
            ValueRef::Integer(n) => Ok(n as f64),
            other => Err(format!("expected a number, found {}", other.kind())),
        }
    }
}

impl FromSql for bool {
    fn from_sql(v: ValueRef<'_>) -> Result<Self, String> {
        i64::from_sql(v).map(|n| n != 0)
    }
}

impl FromSql for String {
    fn from_sql(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Text(t) => Ok(t.to_owned()),
            other => Err(format!("expected text, found {}", other.kind())),
        }
    }
}

impl FromSql for Vec<u8> {
    fn from_sql(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Blob(b) => Ok(b.to_vec()),
            ValueRef::Text(t) => Ok(t.as_bytes().to_vec()),
            other => Err(format!("expected a blob, found {}", other.kind())),
        }
    }
}

impl FromSql for Value {
    fn from_sql(v: ValueRef<'_>) -> Result<Self, String> {
        Ok(v.to_owned())
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_sql(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Null => Ok(None),
            v => T::from_sql(v).map(Some),
        }
    }
}

/// A value of a query built by sea-query, as bound here: integers, reals, text and bytes of
/// every width; any other kind (none of hljca's queries makes one) is refused, never bound as
/// something else.
impl TryFrom<sea_query::Value> for Value {
    type Error = String;

    fn try_from(v: sea_query::Value) -> Result<Value, String> {
        use sea_query::Value as Q;
        let int = |n: Option<i64>| n.map_or(Value::Null, Value::Integer);
        Ok(match v {
            Q::Bool(b) => int(b.map(i64::from)),
            Q::TinyInt(n) => int(n.map(i64::from)),
            Q::SmallInt(n) => int(n.map(i64::from)),
            Q::Int(n) => int(n.map(i64::from)),
            Q::BigInt(n) => int(n),
            Q::TinyUnsigned(n) => int(n.map(i64::from)),
            Q::SmallUnsigned(n) => int(n.map(i64::from)),
            Q::Unsigned(n) => int(n.map(i64::from)),
            Q::BigUnsigned(Some(n)) => {
                Value::Integer(i64::try_from(n).map_err(|_| format!("{n} is beyond an i64"))?)
            }
            Q::BigUnsigned(None) => Value::Null,
            Q::Double(f) => f.map_or(Value::Null, Value::Real),
            Q::Float(f) => f.map_or(Value::Null, |f| Value::Real(f.into())),
            Q::String(s) => s.map_or(Value::Null, Value::Text),
            Q::Char(c) => c.map_or(Value::Null, |c| Value::Text(c.to_string())),
            Q::Bytes(b) => b.map_or(Value::Null, Value::Blob),
            other => {
                return Err(format!(
                    "a query value of kind {other:?} has no binding here"
                ));
            }
        })
    }
}
