//! PHP's post_max_size: a body over the limit reaches iTop as an empty form.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use sim_itop::{ItopSim, ItopSimConfig, REST_LOGIN, REST_PASSWORD};

async fn post(url: &str, form: &[(&str, String)], basic: bool) -> Value {
    let mut req = reqwest::Client::new().post(url).form(form);
    if basic {
        req = req.basic_auth(REST_LOGIN, Some(REST_PASSWORD));
    }
    req.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn a_body_over_post_max_size_loses_every_form_field() {
    let sim = ItopSim::start(ItopSimConfig {
        post_max_size: 4096,
        ..ItopSimConfig::default()
    })
    .await
    .unwrap();
    let request = |text: &str| {
        json!({"operation":"core/create","class":"Attachment","comment":"c","output_fields":"id",
            "fields":{"item_class":"UserRequest","item_id":1,"item_org_id":3,
                "contents":{"data":text,"filename":"a.txt","mimetype":"text/plain","downloads_count":0}}})
        .to_string()
    };
    let small = vec![
        ("version", "1.3".to_string()),
        ("json_data", request("c21hbGw=")),
    ];
    let large = vec![
        ("version", "1.3".to_string()),
        ("json_data", request(&"QUFB".repeat(2000))),
    ];
    assert_eq!(post(&sim.base_url(), &small, true).await["code"], 0);
    // Basic auth (a header) still logs in; then `version` is missing.
    let r = post(&sim.base_url(), &large, true).await;
    assert_eq!(r["code"], 2, "{r}");
    assert_eq!(
        r["message"],
        "Error: Missing parameter 'version' (e.g. '1.0')"
    );
    // Form auth fields are lost with the rest: the login fails first.
    let mut with_form_login = large.clone();
    with_form_login.push(("auth_user", REST_LOGIN.to_string()));
    with_form_login.push(("auth_pwd", REST_PASSWORD.to_string()));
    let r = post(&sim.base_url(), &with_form_login, false).await;
    assert_eq!(r["code"], 1, "{r}");
    // Nothing was created by the refused call.
    assert_eq!(sim.ids("Attachment").len(), 1);
    sim.shutdown().await;
}
