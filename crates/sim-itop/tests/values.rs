//! Values outside an attribute's enumeration, as iTop's `DoCheckToWrite`
//! refuses them: also when they come with a stimulus, whose whole call then
//! fails (nothing saved), and per data model (codes a customised model adds).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use sim_itop::{ItopSim, ItopSimConfig, RunningItop};

async fn assigned_ticket(sim: &RunningItop) -> u64 {
    let r = sim
        .perform(json!({"operation":"core/create","comment":"c","class":"UserRequest","output_fields":"id",
            "fields":{"org_id":3,"caller_id":15,"title":"t","description":"d"}}))
        .await;
    let id: u64 = r["objects"].as_object().unwrap().values().next().unwrap()["key"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let r = sim
        .perform(
            json!({"operation":"core/apply_stimulus","comment":"c","class":"UserRequest","key":id,
            "stimulus":"ev_assign","fields":{"team_id":37,"agent_id":9},"output_fields":"id"}),
        )
        .await;
    assert_eq!(r["code"], 0, "{r}");
    id
}

fn resolve(id: u64, code: &str) -> Value {
    json!({"operation":"core/apply_stimulus","comment":"c","class":"UserRequest","key":id,
        "stimulus":"ev_resolve","fields":{"solution":"done","resolution_code":code},"output_fields":"id,status"})
}

#[tokio::test]
async fn a_stimulus_with_a_value_outside_the_enumeration_is_refused_and_changes_nothing() {
    let sim = ItopSim::start(ItopSimConfig::default()).await.unwrap();
    let id = assigned_ticket(&sim).await;
    let r = sim.perform(resolve(id, "known error")).await;
    assert_eq!(
        r,
        json!({"code":100,"message":format!("Error: Unexpected value for attribute 'Resolution code' (resolution_code) : Value not allowed [known error]: issues = {{0=>Unexpected value for attribute 'Resolution code' (resolution_code) : Value not allowed [known error]}}, class = UserRequest, id = {id}")})
    );
    let ticket = sim.object("UserRequest", id).unwrap();
    assert_eq!(ticket["status"], "assigned");
    assert_eq!(ticket["solution"], "");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_customised_data_model_accepts_the_codes_it_adds() {
    let sim = ItopSim::start(ItopSimConfig {
        extra_enum_values: vec![("resolution_code".into(), "known error".into())],
        ..ItopSimConfig::default()
    })
    .await
    .unwrap();
    let id = assigned_ticket(&sim).await;
    let r = sim.perform(resolve(id, "known error")).await;
    assert_eq!(r["code"], 0, "{r}");
    assert_eq!(
        sim.object("UserRequest", id).unwrap()["resolution_code"],
        "known error"
    );
    sim.shutdown().await;
}

/// Person.first_name is NOT NULL in iTop's data model: an empty or missing
/// first name is refused as the description of a ticket is (and nothing is
/// created).
#[tokio::test]
async fn a_person_without_a_first_name_is_refused() {
    let sim = ItopSim::start(ItopSimConfig::default()).await.unwrap();
    let before = sim.ids("Person").len();
    for fields in [
        json!({"name":"Maria","first_name":"","org_id":3}),
        json!({"name":"Maria","org_id":3}),
    ] {
        let r = sim
            .perform(
                json!({"operation":"core/create","comment":"c","class":"Person",
                "output_fields":"id","fields":fields}),
            )
            .await;
        assert_eq!(
            r,
            json!({"code":100,"message":"Error: Unexpected value for attribute 'First Name' (first_name) : Null not allowed: issues = {0=>Unexpected value for attribute 'First Name' (first_name) : Null not allowed}, class = Person, id = -1"})
        );
    }
    assert_eq!(sim.ids("Person").len(), before);
    sim.shutdown().await;
}
