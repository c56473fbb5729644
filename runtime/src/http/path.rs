//! [`Path`]: the parameters of the route a request matched, for handlers.
//!
//! The host routes requests itself ([`super::router`]): the match that labels the request
//! for its span and metrics also picks the handler, so no second router matches the path
//! again and copies its parameters. axum's own `Path` reads what only axum's `Router`
//! records, so handlers take this one. Its deserializer is written here for the same
//! reason: axum's is private. It reads parameters where they are, in the request's path,
//! and decodes each only when the handler's type asks for it.

use std::borrow::Cow;
use std::fmt;

use axum::extract::FromRequestParts;
use http::request::Parts;
use percent_encoding::percent_decode_str;
use serde::de::value::{MapDeserializer, SeqDeserializer, StrDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

use super::paths::PathTemplates;
use crate::problem::ApiError;

/// The route a request matched, and the body limit its handlers run under: set by the host
/// before any handler runs. One extension for both, because each extension a request
/// carries is a hash-map insert, and a fourth grows the map (callgrind: about 800
/// instructions a request for the body limit's own extension).
#[derive(Debug, Clone)]
pub(crate) struct MatchedRoute {
    pub(crate) templates: PathTemplates,
    pub(crate) index: usize,
    pub(crate) body_limit: usize,
}

/// A route's path parameters, percent-decoded: `Path(id): Path<String>` for one,
/// `Path((owner, n)): Path<(String, u32)>` for several in the template's order, or a struct
/// (or map) whose fields are named as the template's parameters. A value that does not fit
/// its type is a 400 problem naming the parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(route) = parts.extensions.get::<MatchedRoute>() else {
            return Err(ApiError::Internal(
                "`Path` was used on a request the host did not route".into(),
            ));
        };
        let params = route.templates.params(route.index, parts.uri.path());
        T::deserialize(Params(params))
            .map(Path)
            .map_err(ParamError::into_problem)
    }
}

/// Why a parameter could not be read: with the parameter's name when its value is at fault
/// (the client's error), without one when the handler's type does not fit the route (a
/// bug: a struct field no parameter has, a tuple of the wrong length).
#[derive(Debug)]
struct ParamError {
    name: Option<String>,
    reason: String,
}

impl ParamError {
    fn of(name: &str, reason: impl Into<String>) -> Self {
        Self {
            name: Some(name.to_owned()),
            reason: reason.into(),
        }
    }

    /// Names the parameter, unless the error already names one.
    fn naming(mut self, name: &str) -> Self {
        self.name.get_or_insert_with(|| name.to_owned());
        self
    }

    fn into_problem(self) -> ApiError {
        match self.name {
            Some(name) => ApiError::field(&name, &self.reason),
            None => ApiError::Internal(format!(
                "the handler's path type does not fit its route: {}",
                self.reason
            )),
        }
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for ParamError {}

impl de::Error for ParamError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        Self {
            name: None,
            reason: msg.to_string(),
        }
    }
}

/// All of a route's parameters: one value for a scalar type, a sequence for a tuple, a
/// map for a struct.
struct Params<I>(I);

impl<'a, I> Params<I>
where
    I: Iterator<Item = (&'a str, &'a str)> + Clone,
{
    /// The only parameter, for a scalar type.
    fn single(self) -> Result<Param<'a>, ParamError> {
        let mut params = self.0;
        match (params.next(), params.next()) {
            (Some((name, raw)), None) => Ok(Param { name, raw }),
            (None, _) => Err(de::Error::custom("the route has no path parameter")),
            (Some(_), Some(_)) => Err(de::Error::custom(
                "the route has several path parameters: take a tuple or a struct",
            )),
        }
    }

    fn values(self) -> SeqDeserializer<impl Iterator<Item = Param<'a>>, ParamError> {
        SeqDeserializer::new(self.0.map(|(name, raw)| Param { name, raw }))
    }

    fn entries<'de>(
        self,
    ) -> MapDeserializer<'de, impl Iterator<Item = (&'a str, Param<'a>)>, ParamError> {
        MapDeserializer::new(self.0.map(|(name, raw)| (name, Param { name, raw })))
    }
}

macro_rules! through_single {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
            self.single()?.$method(visitor)
        })*
    };
}

impl<'de, 'a, I> de::Deserializer<'de> for Params<I>
where
    I: Iterator<Item = (&'a str, &'a str)> + Clone,
{
    type Error = ParamError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        if self.0.clone().nth(1).is_some() {
            visitor.visit_map(self.entries())
        } else {
            self.single()?.deserialize_any(visitor)
        }
    }

    through_single! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_option
        deserialize_unit deserialize_identifier
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ParamError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ParamError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        let mut values = self.values();
        let value = visitor.visit_seq(&mut values)?;
        values.end()?;
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ParamError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ParamError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        let mut entries = self.entries();
        let value = visitor.visit_map(&mut entries)?;
        entries.end()?;
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ParamError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ParamError> {
        self.single()?.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        visitor.visit_unit()
    }
}

/// One parameter: its name, and its segment as the path spells it.
struct Param<'a> {
    name: &'a str,
    raw: &'a str,
}

impl<'a> Param<'a> {
    fn decoded(&self) -> Result<Cow<'a, str>, ParamError> {
        percent_decode_str(self.raw)
            .decode_utf8()
            .map_err(|_| ParamError::of(self.name, "is not UTF-8 once percent-decoded"))
    }

    fn parse<T: std::str::FromStr>(&self, expected: &str) -> Result<T, ParamError> {
        self.decoded()?
            .parse()
            .map_err(|_| ParamError::of(self.name, format!("must be {expected}")))
    }
}

impl<'de> IntoDeserializer<'de, ParamError> for Param<'_> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! parsed {
    ($($method:ident $visit:ident $t:ty, $expected:expr;)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
            let value: $t = self.parse(&$expected)?;
            visitor
                .$visit::<ParamError>(value)
                .map_err(|e| e.naming(self.name))
        })*
    };
}

fn whole_number<T: fmt::Display>(min: T, max: T) -> String {
    format!("a whole number from {min} to {max}")
}

impl<'de> de::Deserializer<'de> for Param<'_> {
    type Error = ParamError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        self.deserialize_str(visitor)
    }

    // A parameter is one string: a type that wants a sequence or a map is told it got a
    // string, an error without a parameter's name (the handler's type does not fit).
    serde::forward_to_deserialize_any! {
        string bytes byte_buf identifier seq tuple tuple_struct map struct ignored_any
    }

    parsed! {
        deserialize_bool visit_bool bool, "true or false";
        deserialize_i8 visit_i8 i8, whole_number(i8::MIN, i8::MAX);
        deserialize_i16 visit_i16 i16, whole_number(i16::MIN, i16::MAX);
        deserialize_i32 visit_i32 i32, whole_number(i32::MIN, i32::MAX);
        deserialize_i64 visit_i64 i64, whole_number(i64::MIN, i64::MAX);
        deserialize_i128 visit_i128 i128, whole_number(i128::MIN, i128::MAX);
        deserialize_u8 visit_u8 u8, whole_number(u8::MIN, u8::MAX);
        deserialize_u16 visit_u16 u16, whole_number(u16::MIN, u16::MAX);
        deserialize_u32 visit_u32 u32, whole_number(u32::MIN, u32::MAX);
        deserialize_u64 visit_u64 u64, whole_number(u64::MIN, u64::MAX);
        deserialize_u128 visit_u128 u128, whole_number(u128::MIN, u128::MAX);
        deserialize_f32 visit_f32 f32, "a number";
        deserialize_f64 visit_f64 f64, "a number";
        deserialize_char visit_char char, "one character";
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        let visited = match self.decoded()? {
            Cow::Borrowed(s) => visitor.visit_str::<ParamError>(s),
            Cow::Owned(s) => visitor.visit_string::<ParamError>(s),
        };
        visited.map_err(|e| e.naming(self.name))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ParamError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ParamError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ParamError> {
        let decoded = self.decoded()?;
        let variant: StrDeserializer<'_, ParamError> = decoded.as_ref().into_deserializer();
        visitor.visit_enum(variant).map_err(|e| e.naming(self.name))
    }
}
