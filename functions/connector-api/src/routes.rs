//! The API's routes, in one table that the dispatcher, the OpenAPI test and template.yaml's
//! HttpApi events are all checked against.
//!
//! API Gateway matches method and path against the routes template.yaml declares and hands the
//! function the matched route key (`GET /connectors/{id}`) with the path parameters; the
//! dispatcher looks that key up here instead of matching the raw path again. Requests no route
//! declares never reach the function (API Gateway answers 404 itself).

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
    StartRun,
    ListRuns,
    GetRun,
    RetryRun,
    ListFiles,
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
    (Method::POST, "/connectors/{id}/runs", Action::StartRun),
    (Method::GET, "/connectors/{id}/runs", Action::ListRuns),
    (
        Method::GET,
        "/connectors/{id}/runs/{run_id}",
        Action::GetRun,
    ),
    (
        Method::POST,
        "/connectors/{id}/runs/{run_id}/retry",
        Action::RetryRun,
    ),
    (Method::GET, "/connectors/{id}/files", Action::ListFiles),
];

/// The path parameter that carries the connector id.
pub const ID_PARAMETER: &str = "id";
/// The path parameter that carries a run id.
pub const RUN_ID_PARAMETER: &str = "run_id";

/// A route of the table, found by its route key.
#[derive(Debug, PartialEq, Eq)]
pub struct Matched {
    pub action: Action,
    /// Whether the template has `{id}`: the connector id is then in the path parameters.
    pub takes_id: bool,
    /// Whether the template has `{run_id}` as well.
    pub takes_run_id: bool,
}

/// API Gateway's route key of a table entry: method, one space, path template.
pub fn route_key(method: &Method, template: &str) -> String {
    format!("{method} {template}")
}

/// The route of an API Gateway route key (`requestContext.routeKey`); `None` for a key the
/// table does not have (`$default`, or a route template.yaml declares and this does not).
pub fn for_route_key(key: &str) -> Option<Matched> {
    ROUTES
        .iter()
        .find(|(method, template, _)| route_key(method, template) == key)
        .map(|(_, template, action)| Matched {
            action: *action,
            takes_id: template.contains("{id}"),
            takes_run_id: template.contains("{run_id}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_route_by_its_route_key() {
        /// (action, takes_id, takes_run_id)
        type Expected = Option<(Action, bool, bool)>;
        let cases: &[(&str, Expected)] = &[
            (
                "POST /connectors",
                Some((Action::CreateConnector, false, false)),
            ),
            (
                "GET /connectors",
                Some((Action::ListConnectors, false, false)),
            ),
            (
                "GET /connectors/{id}",
                Some((Action::GetConnector, true, false)),
            ),
            (
                "PATCH /connectors/{id}",
                Some((Action::UpdateConnector, true, false)),
            ),
            (
                "DELETE /connectors/{id}",
                Some((Action::DeleteConnector, true, false)),
            ),
            (
                "GET /connectors/{id}/setup",
                Some((Action::GetSetup, true, false)),
            ),
            (
                "POST /connectors/{id}/validate",
                Some((Action::ValidateConnector, true, false)),
            ),
            (
                "POST /connectors/{id}/runs",
                Some((Action::StartRun, true, false)),
            ),
            (
                "GET /connectors/{id}/runs",
                Some((Action::ListRuns, true, false)),
            ),
            (
                "GET /connectors/{id}/runs/{run_id}",
                Some((Action::GetRun, true, true)),
            ),
            (
                "POST /connectors/{id}/runs/{run_id}/retry",
                Some((Action::RetryRun, true, true)),
            ),
            ("POST /connectors/{id}/runs/{run_id}", None),
            ("GET /connectors/{id}/runs/{run_id}/retry", None),
            ("GET /connectors/{id}/runs/{id}", None),
            // Keys are exact: API Gateway sends the template, never the request's own path.
            ("GET /connectors/con_1", None),
            ("GET /connectors/", None),
            ("get /connectors", None),
            ("PUT /connectors/{id}", None),
            ("ANY /connectors", None),
            ("$default", None),
            ("", None),
            ("GET  /connectors", None),
        ];
        for (key, expected) in cases {
            let expected = expected.map(|(action, takes_id, takes_run_id)| Matched {
                action,
                takes_id,
                takes_run_id,
            });
            assert_eq!(for_route_key(key), expected, "{key:?}");
        }
        for (method, template, action) in ROUTES {
            let matched = for_route_key(&route_key(method, template)).expect("in the table");
            assert_eq!(matched.action, *action, "{method} {template}");
        }
    }

    /// template.yaml's HttpApi events of ConnectorApiFunction are exactly the table: a route
    /// declared there only would reach the function and answer 404; one missing there would
    /// never be called.
    #[test]
    fn template_declares_exactly_the_routes() {
        let template = include_str!("../../../template.yaml");
        let mut declared = std::collections::BTreeSet::new();
        let (mut in_function, mut in_http_api) = (false, false);
        let mut method: Option<String> = None;
        for line in template.lines() {
            let indent = line.len() - line.trim_start().len();
            let text = line.trim();
            if indent == 2 && text.ends_with(':') {
                in_function = text == "ConnectorApiFunction:";
            }
            if !in_function || text.is_empty() || text.starts_with('#') {
                continue;
            }
            if let Some(kind) = text.strip_prefix("Type: ") {
                in_http_api = kind == "HttpApi";
                method = None;
            } else if let (true, Some(m)) = (in_http_api, text.strip_prefix("Method: ")) {
                method = Some(m.to_uppercase());
            } else if let (true, Some(path)) = (in_http_api, text.strip_prefix("Path: ")) {
                let m = method
                    .take()
                    .expect("Method before Path in each HttpApi event");
                declared.insert(format!("{m} {path}"));
            }
        }
        let table: std::collections::BTreeSet<String> = ROUTES
            .iter()
            .map(|(method, template, _)| route_key(method, template))
            .collect();
        assert_eq!(
            declared, table,
            "template.yaml HttpApi events vs routes::ROUTES"
        );
    }
}
