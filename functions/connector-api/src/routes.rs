//! The API's routes, in one table that the dispatcher, the OpenAPI test and template.yaml's
//! HttpApi events are all checked against.

use lambda_http::http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    CreateConnector,
    ListConnectors,
    GetConnector,
    UpdateConnector,
    DeleteConnector,
    GetSetup,
    ValidateConnector,
}

/// (method, path template, action). Templates use `{id}` like API Gateway and OpenAPI.
pub const ROUTES: &[(Method, &str, Action)] = &[
    (Method::POST, "/connectors", Action::CreateConnector),
    (Method::GET, "/connectors", Action::ListConnectors),
    (Method::GET, "/connectors/{id}", Action::GetConnector),
    (Method::PATCH, "/connectors/{id}", Action::UpdateConnector),
    (Method::DELETE, "/connectors/{id}", Action::DeleteConnector),
    (Method::GET, "/connectors/{id}/setup", Action::GetSetup),
    (
        Method::POST,
        "/connectors/{id}/validate",
        Action::ValidateConnector,
    ),
];

#[derive(Debug, PartialEq, Eq)]
pub struct Matched {
    pub action: Action,
    pub connector_id: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed { allowed: Vec<Method> },
}

/// Matches a request path (trailing slash tolerated) against the table.
pub fn match_route(method: &Method, path: &str) -> Result<Matched, RouteError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let mut allowed = Vec::new();
    for (route_method, template, action) in ROUTES {
        let Some(connector_id) = match_template(template, &segments) else {
            continue;
        };
        if route_method == method {
            return Ok(Matched {
                action: *action,
                connector_id,
            });
        }
        allowed.push(route_method.clone());
    }
    if allowed.is_empty() {
        Err(RouteError::NotFound)
    } else {
        Err(RouteError::MethodNotAllowed { allowed })
    }
}

/// `Some(id)` when the segments fit the template (`Some(None)` for templates without `{id}`).
fn match_template(template: &str, segments: &[&str]) -> Option<Option<String>> {
    let parts: Vec<&str> = template.split('/').skip(1).collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut id = None;
    for (part, segment) in parts.iter().zip(segments) {
        if *part == "{id}" {
            if segment.is_empty() {
                return None;
            }
            id = Some((*segment).to_owned());
        } else if part != segment {
            return None;
        }
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_each_route_and_explains_misses() {
        type Expected = Result<(Action, Option<&'static str>), RouteError>;
        let cases: &[(Method, &str, Expected)] = &[
            (
                Method::POST,
                "/connectors",
                Ok((Action::CreateConnector, None)),
            ),
            (
                Method::GET,
                "/connectors/",
                Ok((Action::ListConnectors, None)),
            ),
            (
                Method::GET,
                "/connectors/con_1",
                Ok((Action::GetConnector, Some("con_1"))),
            ),
            (
                Method::PATCH,
                "/connectors/con_1",
                Ok((Action::UpdateConnector, Some("con_1"))),
            ),
            (
                Method::DELETE,
                "/connectors/con_1",
                Ok((Action::DeleteConnector, Some("con_1"))),
            ),
            (
                Method::GET,
                "/connectors/con_1/setup",
                Ok((Action::GetSetup, Some("con_1"))),
            ),
            (
                Method::POST,
                "/connectors/con_1/validate",
                Ok((Action::ValidateConnector, Some("con_1"))),
            ),
            (Method::GET, "/connector", Err(RouteError::NotFound)),
            (Method::GET, "/connectors/a/b", Err(RouteError::NotFound)),
            (Method::GET, "/", Err(RouteError::NotFound)),
            (
                Method::PUT,
                "/connectors/con_1",
                Err(RouteError::MethodNotAllowed {
                    allowed: vec![Method::GET, Method::PATCH, Method::DELETE],
                }),
            ),
        ];
        for (method, path, expected) in cases {
            let got = match_route(method, path);
            let expected = expected.as_ref().map(|(action, id)| Matched {
                action: *action,
                connector_id: id.map(str::to_owned),
            });
            match (&got, &expected) {
                (Ok(g), Ok(e)) => assert_eq!(g, e, "{method} {path}"),
                (Err(g), Err(e)) => assert_eq!(g, *e, "{method} {path}"),
                _ => panic!("{method} {path}: got {got:?}, expected {expected:?}"),
            }
        }
    }
}
