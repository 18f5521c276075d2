//! Values as written, with where they were written: as parsed ([`S`], the TOML span) and as
//! merged across files ([`At`], the origin). Shared by the raw shapes of every section and
//! by the loader, so neither imports the other for them.

use serde::Deserialize;
use toml::Spanned;

use crate::error::Origin;

/// A value as parsed, with its byte span in its file.
pub(crate) type S<T> = Spanned<T>;

/// A value with the place it was written.
pub(crate) type At<T> = (T, Origin);

/// A size or a count may be written as an integer or as a string with a unit.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub(crate) enum IntOrString {
    Int(i64),
    Str(String),
}
