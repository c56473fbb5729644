//! The reference's path policy: literal segments matched in any case, and a trailing slash
//! ignored, in one layer in front of the router.
//!
//! The reference services are ASP.NET (and Koa, Spring), whose routing ignores case and a
//! trailing slash, and its clients call `/api/Deliveries/...` and `/api/DroneDeliveries/...`.
//! axum's router matches paths exactly, as written. Lower-casing whole paths would corrupt
//! ids, so each request path is compared with the declared templates and only the literal
//! segments are rewritten to the template's spelling; a trailing slash is dropped from a
//! path that matches one. The router then sees the path as declared, and its `Path`
//! extractor reads the parameters as the client spelled them. The match is recorded
//! ([`MatchedTemplate`]) for the observation's span and metrics, which run before the
//! router has matched anything.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use http::Uri;
use http::uri::PathAndQuery;
use tower::{Layer, Service};

/// The declared path templates, matched against request paths once per request.
#[derive(Debug, Clone, Default)]
pub struct PathTemplates {
    /// Most specific first: at the first segment where two templates differ, a literal
    /// comes before a parameter, as axum's router prefers it (`/api/deliveries/summary`
    /// before `/api/deliveries/{id}`).
    templates: Arc<[Template]>,
}

/// The template a request's path matched: recorded by [`ReferencePaths`] on the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedTemplate {
    /// The template, as declared: the route's label in spans and metrics.
    pub route: Arc<str>,
    /// Its place among the templates, below [`PathTemplates::len`]: a key for what the
    /// observation keeps per route.
    pub index: usize,
}

/// The layer: rewrites each request's path to its template's spelling and records the
/// match.
#[derive(Debug, Clone)]
pub struct ReferencePaths {
    templates: PathTemplates,
}

impl ReferencePaths {
    pub fn new(templates: PathTemplates) -> Self {
        Self { templates }
    }
}

impl<S> Layer<S> for ReferencePaths {
    type Service = ReferencePathsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReferencePathsService {
            inner,
            templates: self.templates.clone(),
        }
    }
}

/// The service of [`ReferencePaths`].
#[derive(Debug, Clone)]
pub struct ReferencePathsService<S> {
    inner: S,
    templates: PathTemplates,
}

impl<S: Service<Request>> Service<Request> for ReferencePathsService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let (matched, mut req) = self.templates.resolve(req);
        if let Some(matched) = matched {
            req.extensions_mut().insert(matched);
        }
        self.inner.call(req)
    }
}

/// Checks that the policy can match `template`.
///
/// # Panics
/// As [`PathTemplates::new`].
pub(crate) fn check_template(template: &str) {
    let _ = Template::new(template);
}

/// Path segments split without allocating (the functions' longest templates have 4).
const SEGMENTS_ON_STACK: usize = 16;

#[derive(Debug)]
struct Template {
    /// As declared: the route's label.
    route: Arc<str>,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    Literal(String),
    /// `{name}`: any one segment (axum's `Path` reads it by its name).
    Param,
}

/// What a request path matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// The template, as declared.
    pub route: Arc<str>,
    /// Its place among the templates, below [`PathTemplates::len`]: a key for what the
    /// caller keeps per route.
    pub index: usize,
    /// The path with literal segments spelled as declared and no trailing slash, when it
    /// differs from the request's.
    pub canonical: Option<String>,
}

impl Template {
    /// Panics, naming the template, on a segment the host cannot route: a parameter that
    /// is not a whole segment (`/files/{name}.txt`), a catch-all (`{*rest}`) or an empty
    /// name. Routes are declared at start-up, so this stops the function before it serves.
    fn new(template: &str) -> Self {
        let segments = split(template)
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) if valid_param_name(name) => Segment::Param,
                    _ if s.contains(['{', '}']) => panic!(
                        "route `{template}`: the segment `{s}` is not a parameter the host can \
                     route; a parameter is a whole segment, `{{name}}`, with a name of \
                     letters, digits and `_`"
                    ),
                    _ => Segment::Literal(s.to_owned()),
                },
            )
            .collect();
        Self {
            route: template.into(),
            segments,
        }
    }

    /// Whether a path of these segments matches, its literal segments compared exactly or
    /// ignoring case.
    fn matches(&self, segments: &[&str], exact: bool) -> bool {
        self.segments.len() == segments.len()
            && self
                .segments
                .iter()
                .zip(segments)
                .all(|(template, segment)| match template {
                    Segment::Param => true,
                    Segment::Literal(l) if exact => l == segment,
                    Segment::Literal(l) => l.eq_ignore_ascii_case(segment),
                })
    }

    fn rewrite(&self, segments: &[&str], len: usize) -> String {
        let mut out = String::with_capacity(len);
        for (template, segment) in self.segments.iter().zip(segments) {
            out.push('/');
            out.push_str(match template {
                Segment::Literal(l) => l,
                Segment::Param => segment,
            });
        }
        out
    }

    /// Orders literals before parameters, segment by segment.
    fn specificity(&self) -> Vec<bool> {
        self.segments
            .iter()
            .map(|s| matches!(s, Segment::Param))
            .collect()
    }
}

impl PathTemplates {
    /// # Panics
    /// On a template with a segment the policy cannot match: a parameter that is not a
    /// whole segment (`/files/{name}.txt`), a catch-all (`{*rest}`) or an empty name.
    /// Routes are declared at start-up, so this stops the function before it serves.
    pub fn new(templates: &[String]) -> Self {
        let mut parsed: Vec<Template> = templates.iter().map(|t| Template::new(t)).collect();
        parsed.sort_by_cached_key(Template::specificity);
        Self {
            templates: parsed.into(),
        }
    }

    /// The template `path` matches: an exact match first, then one ignoring the case of
    /// literal segments; a trailing slash is ignored.
    pub fn find(&self, path: &str) -> Option<Matched> {
        // The path is split once, onto the stack unless it is unusually long (this runs
        // on every request).
        let mut stack = [""; SEGMENTS_ON_STACK];
        let mut count = 0;
        let mut long = Vec::new();
        for segment in split(path) {
            match stack.get_mut(count) {
                Some(slot) => *slot = segment,
                None if long.is_empty() => {
                    long.extend_from_slice(&stack);
                    long.push(segment);
                }
                None => long.push(segment),
            }
            count += 1;
        }
        let segments = if long.is_empty() {
            &stack[..count]
        } else {
            &long[..]
        };
        // `/api/packages/42/` is `/api/packages/42`, as the reference's frameworks route it.
        let trailing_slash = path.len() > 1 && path.ends_with('/');
        let mut templates = self.templates.iter().enumerate();
        if let Some((index, t)) = templates.clone().find(|(_, t)| t.matches(segments, true)) {
            return Some(Matched {
                route: t.route.clone(),
                index,
                canonical: trailing_slash.then(|| t.rewrite(segments, path.len())),
            });
        }
        let (index, t) = templates.find(|(_, t)| t.matches(segments, false))?;
        Some(Matched {
            route: t.route.clone(),
            index,
            canonical: Some(t.rewrite(segments, path.len())),
        })
    }

    /// The path with literal segments spelled as declared, if some template matches it
    /// ignoring case and the spelling differs; exact matches are preferred.
    pub fn canonical_path(&self, path: &str) -> Option<String> {
        self.find(path)?.canonical
    }

    /// How many templates there are.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// The route the request's path matches, if any (its template and index), with the
    /// path rewritten to the template's spelling when it differs.
    pub fn resolve(&self, mut req: Request) -> (Option<MatchedTemplate>, Request) {
        let Some(Matched {
            route,
            index,
            canonical,
        }) = self.find(req.uri().path())
        else {
            return (None, req);
        };
        if let Some(path) = canonical {
            let pq = match req.uri().query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            let mut parts = req.uri().clone().into_parts();
            if let Ok(pq) = pq.parse::<PathAndQuery>() {
                parts.path_and_query = Some(pq);
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            }
        }
        (Some(MatchedTemplate { route, index }), req)
    }
}

fn valid_param_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The path's non-empty segments. Written out rather than `str::split`, whose searcher
/// costs more than the short segments it finds (callgrind: about 40% of the matching).
fn split(path: &str) -> Segments<'_> {
    Segments { rest: path }
}

#[derive(Clone)]
struct Segments<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            let end = self
                .rest
                .bytes()
                .position(|b| b == b'/')
                .unwrap_or(self.rest.len());
            // `end` is at an ASCII '/' or the end: always a character boundary.
            let (segment, rest) = self.rest.split_at_checked(end)?;
            self.rest = rest.get(1..).unwrap_or_default();
            if !segment.is_empty() {
                return Some(segment);
            }
            if self.rest.is_empty() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates() -> PathTemplates {
        PathTemplates::new(&[
            "/api/deliveries/{id}".to_owned(),
            "/api/deliveries/{id}/status".to_owned(),
            "/api/deliveries/public/{id}".to_owned(),
            "/api/dronedeliveries/{id}".to_owned(),
        ])
    }

    #[test]
    fn literal_segments_are_rewritten_and_ids_kept() {
        let t = templates();
        assert_eq!(
            t.canonical_path("/api/Deliveries/AbC-1/Status").as_deref(),
            Some("/api/deliveries/AbC-1/status")
        );
        assert_eq!(
            t.canonical_path("/API/DroneDeliveries/X").as_deref(),
            Some("/api/dronedeliveries/X")
        );
        assert_eq!(
            t.canonical_path("/api/Deliveries/Public/Id9").as_deref(),
            Some("/api/deliveries/public/Id9")
        );
    }

    #[test]
    fn exact_and_unknown_paths_are_left_alone() {
        let t = templates();
        assert_eq!(
            t.canonical_path("/api/deliveries/Status"),
            None,
            "an id that looks like a word stays"
        );
        assert_eq!(t.canonical_path("/nothing/here"), None);
    }

    #[test]
    fn a_trailing_slash_is_dropped_from_a_matching_path() {
        let t = templates();
        assert_eq!(
            t.canonical_path("/api/deliveries/AbC-1/").as_deref(),
            Some("/api/deliveries/AbC-1")
        );
        assert_eq!(
            t.canonical_path("/API/Deliveries/AbC-1/Status/").as_deref(),
            Some("/api/deliveries/AbC-1/status")
        );
        assert_eq!(t.canonical_path("/nothing/here/"), None);
        assert_eq!(t.canonical_path("/"), None);
    }

    #[test]
    fn the_query_string_survives() {
        let t = PathTemplates::new(&["/api/deliveries/summary".to_owned()]);
        let req = Request::builder()
            .uri("/API/Deliveries/Summary?ownerId=A&year=2026")
            .body(axum::body::Body::empty())
            .unwrap();
        let (route, req) = t.resolve(req);
        assert_eq!(req.uri(), "/api/deliveries/summary?ownerId=A&year=2026");
        assert_eq!(
            route.map(|m| m.route.to_string()).as_deref(),
            Some("/api/deliveries/summary")
        );
    }

    #[test]
    fn a_literal_segment_wins_over_a_parameter_whatever_the_declaration_order() {
        let t = PathTemplates::new(&[
            "/api/deliveries/{id}".to_owned(),
            "/api/deliveries/summary".to_owned(),
        ]);
        let route = |p: &str| t.find(p).map(|m| m.route.to_string());
        assert_eq!(
            route("/api/deliveries/summary").as_deref(),
            Some("/api/deliveries/summary")
        );
        assert_eq!(
            route("/api/deliveries/d1").as_deref(),
            Some("/api/deliveries/{id}")
        );
        assert_eq!(
            route("/API/Deliveries/d1/").as_deref(),
            Some("/api/deliveries/{id}")
        );
        assert_eq!(route("/api/deliveries/d1/x"), None);
    }

    #[test]
    fn segments_skip_empty_ones_and_keep_every_other_character() {
        fn all(p: &str) -> Vec<&str> {
            split(p).collect()
        }
        assert_eq!(all("/api//deliveries/é-1/"), ["api", "deliveries", "é-1"]);
        assert_eq!(all("api/x"), ["api", "x"]);
        assert!(all("/").is_empty());
        assert!(all("").is_empty());
        assert!(all("///").is_empty());
    }

    #[test]
    fn a_path_longer_than_the_stack_split_still_matches() {
        let long = format!("/a{}", "/{x}".repeat(SEGMENTS_ON_STACK + 2));
        let t = PathTemplates::new(std::slice::from_ref(&long));
        let path = format!("/A{}", "/v".repeat(SEGMENTS_ON_STACK + 2));
        let matched = t.find(&path).unwrap();
        assert_eq!(&*matched.route, long.as_str());
        assert_eq!(
            matched.canonical,
            Some(format!("/a{}", "/v".repeat(SEGMENTS_ON_STACK + 2)))
        );
        assert_eq!(t.find(&format!("{path}/v")), None);
    }
}
