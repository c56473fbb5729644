//! Configuration from environment variables.
//!
//! Every variable is read through [`Env`], so tests hand in a map instead of mutating the
//! process environment. [`EnvReader`] keeps going after a bad value and collects every
//! problem, so an operator sees all of them at once, before any port is bound.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The named developer environment a function runs in (`fabrikam manifests --environment`),
/// if any. Environments share the dev profile's Redis and Cosmos DB account, so the stores
/// scope their data by it: Redis keys under `<name>:`, MongoDB databases `<database>-<name>`
/// (an explicit `REDIS_KEY_PREFIX` or database variable wins).
pub const ENVIRONMENT_NAME: &str = "FABRIKAM_ENVIRONMENT";

/// Where configuration values come from.
pub trait Env: Send + Sync {
    /// The raw value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A fixed set of variables, for tests and for the dev launcher.
#[derive(Debug, Clone, Default)]
pub struct MapEnv(HashMap<String, String>);

impl MapEnv {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name=value`, replacing an earlier value.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }
}

impl<const N: usize> From<[(&str, &str); N]> for MapEnv {
    fn from(pairs: [(&str, &str); N]) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }
}

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// One bad variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub variable: String,
    pub message: String,
}

/// Every problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl ConfigError {
    /// Whether some problem names `variable`.
    pub fn names(&self, variable: &str) -> bool {
        self.problems.iter().any(|p| p.variable == variable)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration ({} problems)",
            self.problems.len()
        )?;
        for p in &self.problems {
            write!(f, "\n  {}: {}", p.variable, p.message)?;
        }
        Ok(())
    }
}

/// Reads typed values and collects problems instead of stopping at the first.
///
/// A bad value yields the default, so reading can go on and report the rest.
pub struct EnvReader<'a> {
    env: &'a dyn Env,
    problems: Vec<ConfigProblem>,
}

impl fmt::Debug for EnvReader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvReader")
            .field("problems", &self.problems)
            .finish()
    }
}

impl<'a> EnvReader<'a> {
    pub fn new(env: &'a dyn Env) -> Self {
        Self {
            env,
            problems: Vec::new(),
        }
    }

    /// The trimmed value of `name`; an empty value counts as unset.
    pub fn raw(&self, name: &str) -> Option<String> {
        self.env
            .var(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Records a problem with `name` found by the caller's own check.
    pub fn problem(&mut self, name: &str, message: impl Into<String>) {
        let variable = name.to_owned();
        self.problems.push(ConfigProblem {
            variable,
            message: message.into(),
        });
    }

    pub fn string(&mut self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_owned())
    }

    /// A value parsed with [`FromStr`].
    pub fn parse<T>(&mut self, name: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.raw(name) {
            None => default,
            Some(raw) => match raw.parse() {
                Ok(v) => v,
                Err(e) => {
                    self.problem(name, format!("cannot parse {raw:?}: {e}"));
                    default
                }
            },
        }
    }

    /// A number that must lie in `min..=max`.
    pub fn number_in<T>(&mut self, name: &str, default: T, min: T, max: T) -> T
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
        T::Err: fmt::Display,
    {
        let v = self.parse(name, default);
        if v < min || v > max {
            self.problem(name, format!("{v} is out of range {min}..={max}"));
            return default;
        }
        v
    }

    /// A duration given in whole milliseconds, within `min..=max`.
    pub fn millis(
        &mut self,
        name: &str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Duration {
        let ms = self.number_in(name, millis_of(default), millis_of(min), millis_of(max));
        Duration::from_millis(ms)
    }

    /// A duration given in whole seconds, within `min..=max`.
    pub fn seconds(
        &mut self,
        name: &str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Duration {
        let s = self.number_in(name, default.as_secs(), min.as_secs(), max.as_secs());
        Duration::from_secs(s)
    }

    /// An absolute `http://` URL; trailing slashes are dropped so paths can be appended.
    pub fn http_url(&mut self, name: &str, default: &str) -> String {
        let value = self.string(name, default);
        match value.parse::<http::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("http") && uri.authority().is_some() => {
                value.trim_end_matches('/').to_owned()
            }
            Ok(_) => {
                self.problem(name, format!("{value:?} is not an absolute http:// URL"));
                default.trim_end_matches('/').to_owned()
            }
            Err(e) => {
                self.problem(name, format!("{value:?} is not a URL: {e}"));
                default.trim_end_matches('/').to_owned()
            }
        }
    }

    /// The contents of the file whose path `name` holds (a mounted secret, such as a Key
    /// Vault object the CSI driver wrote), trailing newline removed; `None` when `name` is
    /// unset. The contents never appear in a problem message.
    pub fn secret_file(&mut self, name: &str) -> Option<String> {
        let path = self.raw(name)?;
        match std::fs::read_to_string(&path) {
            Ok(contents) => {
                let value = contents.trim_end_matches(['\r', '\n']).to_owned();
                if value.is_empty() {
                    self.problem(name, format!("the file {path:?} is empty"));
                    return None;
                }
                Some(value)
            }
            Err(e) => {
                self.problem(name, format!("cannot read the file {path:?}: {e}"));
                None
            }
        }
    }

    /// One of a fixed set of words, case-insensitive; returns the canonical spelling.
    pub fn choice(
        &mut self,
        name: &str,
        default: &'static str,
        allowed: &[&'static str],
    ) -> &'static str {
        let Some(raw) = self.raw(name) else {
            return default;
        };
        match allowed.iter().find(|a| a.eq_ignore_ascii_case(&raw)) {
            Some(a) => a,
            None => {
                self.problem(
                    name,
                    format!("{raw:?} is not one of {}", allowed.join(", ")),
                );
                default
            }
        }
    }

    /// Ends reading: the problems, if any.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }

    /// Moves the problems found so far into `other` (to report several readers together).
    pub fn merge_into(self, other: &mut EnvReader<'_>) {
        other.problems.extend(self.problems);
    }
}

fn millis_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_are_read_trimmed_and_their_problems_never_show_the_value() {
        let dir = std::env::temp_dir().join(format!("secret-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("key"), "s3cret-value\n").unwrap();
        std::fs::write(dir.join("empty"), "\n").unwrap();
        let path = |f: &str| dir.join(f).display().to_string();
        let env = MapEnv::new()
            .with("KEY_FILE", path("key"))
            .with("EMPTY_FILE", path("empty"))
            .with("GONE_FILE", path("gone"));
        let mut r = EnvReader::new(&env);
        assert_eq!(r.secret_file("KEY_FILE").as_deref(), Some("s3cret-value"));
        assert_eq!(r.secret_file("UNSET_FILE"), None);
        assert_eq!(r.secret_file("EMPTY_FILE"), None);
        assert_eq!(r.secret_file("GONE_FILE"), None);
        let e = r.finish().unwrap_err();
        assert!(e.names("EMPTY_FILE") && e.names("GONE_FILE"), "{e}");
        assert!(!e.to_string().contains("s3cret"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn every_problem_is_reported_with_its_variable() {
        let env = MapEnv::from([("LISTEN", "http"), ("GRACE", "99999"), ("URL", "ftp://x")]);
        let mut r = EnvReader::new(&env);
        let port: u16 = r.parse("LISTEN", 8080);
        let grace = r.number_in("GRACE", 10u64, 1, 600);
        let url = r.http_url("URL", "http://localhost:1");
        assert_eq!(
            (port, grace, url.as_str()),
            (8080, 10, "http://localhost:1")
        );
        let err = r.finish().unwrap_err();
        assert!(err.names("LISTEN") && err.names("GRACE") && err.names("URL"));
        assert!(err.to_string().contains("LISTEN: cannot parse \"http\""));
    }

    #[test]
    fn defaults_apply_when_unset_or_blank() {
        let env = MapEnv::from([("NAME", "  ")]);
        let mut r = EnvReader::new(&env);
        assert_eq!(r.string("NAME", "x"), "x");
        assert_eq!(r.choice("FORMAT", "json", &["json", "text"]), "json");
        assert!(r.finish().is_ok());
    }
}
