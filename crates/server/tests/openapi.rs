//! The OpenAPI document of the intake API against the validator it
//! describes: every body the validator accepts must match the document's
//! schema (a schema stricter than the API would make generated clients refuse
//! what the API takes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

fn document() -> Value {
    serde_json::from_str(&server::sources::intake::openapi_document().unwrap()).unwrap()
}

/// A validator for the document's component `name` (its `$ref`s resolved
/// inside the document).
fn schema_of(doc: &Value, name: &str) -> jsonschema::Validator {
    let mut root = doc.clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["$ref"] = json!(format!("#/components/schemas/{name}"));
    jsonschema::validator_for(&root).unwrap()
}

#[test]
fn every_body_the_validator_accepts_matches_the_schema() {
    let doc = document();
    let schema = schema_of(&doc, "TicketRequest");
    for body in intake::request::accepted_examples() {
        let errors: Vec<String> = schema.iter_errors(&body).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{body}: {errors:?}");
    }
    // And the schema is not a blank cheque.
    for wrong in [
        json!({"requester": {"email": "a@b.co"}}),
        json!({"requester": {"email": "a@b.co"}, "description": "x", "urgency": 9}),
        json!({"requester": {"email": "a@b.co"}, "description": "x", "type": "problem"}),
        json!({"requester": {"email": "a@b.co"}, "description": "x",
               "organisation": {"entity_id": "x"}}),
    ] {
        assert!(!schema.is_valid(&wrong), "{wrong} should not match");
    }
}

#[test]
fn the_document_names_every_route_and_answer() {
    let doc = document();
    let create = &doc["paths"]["/api/v1/tickets"]["post"];
    let by_source = &doc["paths"]["/api/v1/sources/{source}/tickets"]["post"];
    assert!(by_source.is_object(), "the sources route is missing");
    for op in [create, by_source] {
        for status in [
            "201", "202", "400", "401", "404", "413", "415", "422", "502", "503",
        ] {
            assert!(op["responses"][status].is_object(), "{status} missing");
        }
        assert!(op["responses"]["202"]["headers"]["Location"].is_object());
        assert!(op["responses"]["201"]["headers"]["Idempotent-Replayed"].is_object());
        assert!(op["responses"]["503"]["headers"]["Retry-After"].is_object());
        let mode = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "mode")
            .unwrap();
        assert_eq!(mode["schema"]["enum"], json!(["wait", "sync", "async"]));
    }
    let list = &doc["paths"]["/api/v1/tickets"]["get"];
    let status = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "status")
        .unwrap();
    assert_eq!(status["schema"]["enum"], json!(["open", "all"]));
    // Examples match their schemas.
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        if let Some(example) = schema.get("example") {
            let errors: Vec<String> = schema_of(&doc, name)
                .iter_errors(example)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{name}'s example: {errors:?}");
        }
    }
}
