//! Case-insensitive path matching, and a trailing slash ignored.
//!
//! The reference services are ASP.NET (and Koa, Spring), whose routing ignores case and a
//! trailing slash, and its clients call `/api/Deliveries/...` and `/api/DroneDeliveries/...`.
//! Lower-casing whole paths would corrupt ids, so each request path is compared with the
//! declared templates and only the literal segments are rewritten to the template's
//! spelling; a trailing slash is dropped from a path that matches one.

use std::sync::Arc;

use axum::extract::Request;
use http::Uri;
use http::uri::PathAndQuery;

/// The declared path templates, matched against request paths once per request: the match
/// gives both the canonical path (for the router) and the route's label (for the span and
/// the metrics), so the host's observation can wrap the router from outside instead of
/// being layered onto every route (callgrind: axum's per-route middleware cost about 5,000
/// instructions a request).
#[derive(Debug, Clone, Default)]
pub struct PathTemplates {
    /// Most specific first: at the first segment where two templates differ, a literal
    /// comes before a parameter, as axum's router prefers it (`/api/deliveries/summary`
    /// before `/api/deliveries/{id}`).
    templates: Arc<[Template]>,
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
    /// `{name}`: any one segment.
    Param(String),
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
                    Some(name) if valid_param_name(name) => Segment::Param(name.to_owned()),
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
                    Segment::Param(_) => true,
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
                Segment::Param(_) => segment,
            });
        }
        out
    }

    /// Orders literals before parameters, segment by segment.
    fn specificity(&self) -> Vec<bool> {
        self.segments
            .iter()
            .map(|s| matches!(s, Segment::Param(_)))
            .collect()
    }
}

impl PathTemplates {
    /// # Panics
    /// On a template with a segment the host cannot route (see [`crate::Routes::route`]).
    pub fn new(templates: &[String]) -> Self {
        Self::with_values(templates.iter().map(|t| (t.clone(), ())).collect()).0
    }

    /// The templates of `routes`, and each route's value at its template's index.
    ///
    /// # Panics
    /// As [`PathTemplates::new`].
    pub fn with_values<T>(routes: Vec<(String, T)>) -> (Self, Vec<T>) {
        let mut parsed: Vec<(Template, T)> = routes
            .into_iter()
            .map(|(template, value)| (Template::new(&template), value))
            .collect();
        parsed.sort_by_cached_key(|(template, _)| template.specificity());
        let (templates, values): (Vec<Template>, Vec<T>) = parsed.into_iter().unzip();
        (
            Self {
                templates: templates.into(),
            },
            values,
        )
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

    /// The templates as declared, in the order of their indexes (most specific first).
    pub fn routes(&self) -> impl Iterator<Item = &str> {
        self.templates.iter().map(|t| &*t.route)
    }

    /// The parameters of the template at `index` in `path`, a path it matched: each one's
    /// name and its segment as the path spells it (still percent-encoded), in the
    /// template's order. Nothing for an index out of range.
    pub fn params<'a>(
        &'a self,
        index: usize,
        path: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + Clone {
        let segments = self.templates.get(index).map_or(&[][..], |t| &t.segments);
        segments
            .iter()
            .zip(split(path))
            .filter_map(|(template, segment)| match template {
                Segment::Param(name) => Some((name.as_str(), segment)),
                Segment::Literal(_) => None,
            })
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
    pub fn resolve(&self, mut req: Request) -> (Option<(Arc<str>, usize)>, Request) {
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
        (Some((route, index)), req)
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
            route.map(|(r, _)| r.to_string()).as_deref(),
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
