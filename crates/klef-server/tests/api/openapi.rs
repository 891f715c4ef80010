//! The `OpenAPI` document describes every route the router serves, and nothing else.

use std::collections::BTreeSet;

use klef_core::wire::routes::Endpoint;
use klef_server::routes::OPENAPI_JSON;
use serde_json::Value;

use crate::common::{Api, Server, with_sqlite};

#[test]
fn every_route_is_documented_and_nothing_else() {
    let doc: Value = serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON");
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "delete", "patch"] {
            if let Some(op) = item.get(method) {
                assert!(
                    op["responses"].is_object(),
                    "{method} {path} has no responses"
                );
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let routed: BTreeSet<(String, String)> = Endpoint::ALL
        .iter()
        .map(|e| (e.method().as_str().to_owned(), e.path().to_owned()))
        .collect();
    assert_eq!(documented, routed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_route_is_served() {
    with_sqlite(|target| async move {
        let server = Server::start(&target, false).await;
        let api = Api::new(&server.base);
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        for endpoint in Endpoint::ALL {
            let (method, path) = (endpoint.method().as_str(), endpoint.path());
            let concrete = path
                .replace("{name}", "API_KEY")
                .split('/')
                .map(|seg| if seg.starts_with('{') { id } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            let body = if method == "GET" || method == "DELETE" {
                None
            } else {
                Some("{}".to_owned())
            };
            let answer = api
                .raw(method, &concrete, Some("klef_sess_x"), body, None)
                .await;
            assert!(
                answer.code() != "no_route" && answer.code() != "method_not_allowed",
                "{method} {path}: {:?}",
                answer.body
            );
        }
        server.stop().await;
    })
    .await;
}
