//! `remove_after`: an object disappears right after a matching request is
//! answered, as when someone deletes it between two reads of a client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use sim_itop::{ItopSim, ItopSimConfig};

fn get(oql: &str) -> Value {
    json!({"operation":"core/get","class":"Attachment","key":oql,"output_fields":"id"})
}

fn found(answer: &Value) -> usize {
    answer["objects"].as_object().map_or(0, |o| o.len())
}

#[tokio::test]
async fn an_object_is_removed_after_the_matching_answer_only() {
    let sim = ItopSim::start(ItopSimConfig::default()).await.unwrap();
    let mut ids = Vec::new();
    for name in ["a.txt", "b.txt"] {
        let r = sim
            .perform(json!({"operation":"core/create","class":"Attachment","comment":"c","output_fields":"id",
                "fields":{"item_class":"UserRequest","item_id":1,"item_org_id":3,
                    "contents":{"data":"eA==","filename":name,"mimetype":"text/plain","downloads_count":0}}}))
            .await;
        assert_eq!(r["code"], 0, "{r}");
        ids.push(
            r["objects"].as_object().unwrap().values().next().unwrap()["key"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
    }
    let listing = "SELECT Attachment WHERE item_id = 1";
    sim.remove_after(
        move |r| r["key"].as_str() == Some(listing),
        "Attachment",
        ids[0],
    );
    // Another request leaves it in place.
    assert_eq!(found(&sim.perform(get("SELECT Attachment")).await), 2);
    // The matching one still names it; the next read finds it gone.
    assert_eq!(found(&sim.perform(get(listing)).await), 2);
    let one = sim
        .perform(
            json!({"operation":"core/get","class":"Attachment","key":ids[0],"output_fields":"id"}),
        )
        .await;
    assert_eq!((one["code"].as_i64(), found(&one)), (Some(0), 0), "{one}");
    // Once only.
    assert_eq!(found(&sim.perform(get(listing)).await), 1);
    assert_eq!(sim.ids("Attachment"), vec![ids[1]]);
    sim.shutdown().await;
}
