//! Case-insensitive path matching, and a trailing slash ignored.
//!
//! The reference services are ASP.NET (and Koa, Spring), whose routing ignores case and a
//! trailing slash, and its clients call `/api/Deliveries/...` and `/api/DroneDeliveries/...`.
//! Lower-casing whole paths would corrupt ids, so each request path is compared with the
//! declared templates and only the literal segments are rewritten to the template's
//! spelling; a trailing slash is dropped from a path that matches one.

use axum::extract::Request;
use http::Uri;
use http::uri::PathAndQuery;

#[derive(Debug, Clone, Default)]
pub struct PathTemplates {
    templates: std::sync::Arc<Vec<Vec<Segment>>>,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param,
}

impl PathTemplates {
    pub fn new(templates: &[String]) -> Self {
        let parsed = templates
            .iter()
            .map(|t| {
                split(t)
                    .map(|s| {
                        if s.starts_with('{') && s.ends_with('}') {
                            Segment::Param
                        } else {
                            Segment::Literal(s.to_owned())
                        }
                    })
                    .collect()
            })
            .collect();
        Self {
            templates: std::sync::Arc::new(parsed),
        }
    }

    /// The path with literal segments spelled as declared, if some template matches it
    /// ignoring case; exact matches are preferred.
    pub fn canonical_path(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = split(path).collect();
        let matches = |t: &Vec<Segment>, exact: bool| {
            t.len() == segments.len()
                && t.iter().zip(&segments).all(|(tpl, seg)| match tpl {
                    Segment::Param => true,
                    Segment::Literal(l) if exact => l == seg,
                    Segment::Literal(l) => l.eq_ignore_ascii_case(seg),
                })
        };
        // `/api/packages/42/` is `/api/packages/42`, as the reference's frameworks route it.
        let trailing_slash = path.len() > 1 && path.ends_with('/');
        let exact = self.templates.iter().find(|t| matches(t, true));
        if exact.is_some() && !trailing_slash {
            return None;
        }
        let template = exact.or_else(|| self.templates.iter().find(|t| matches(t, false)))?;
        let rewritten: Vec<&str> = template
            .iter()
            .zip(&segments)
            .map(|(tpl, seg)| match tpl {
                Segment::Literal(l) => l.as_str(),
                Segment::Param => seg,
            })
            .collect();
        let mut out = String::with_capacity(path.len());
        for s in rewritten {
            out.push('/');
            out.push_str(s);
        }
        Some(out)
    }

    /// Rewrites the request's path if a template matches it ignoring case.
    pub fn canonicalize(&self, mut req: Request) -> Request {
        let Some(path) = self.canonical_path(req.uri().path()) else {
            return req;
        };
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
        req
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
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
        let req = t.canonicalize(req);
        assert_eq!(req.uri(), "/api/deliveries/summary?ownerId=A&year=2026");
    }
}
