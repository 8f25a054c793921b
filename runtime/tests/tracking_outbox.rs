//! The IndexedDB outbox in real browsers: writes survive closing and reopening the
//! database (a reload), reads come oldest first, deletes and counts are exact.
#![cfg(target_arch = "wasm32")]

use edetail_runtime::tracking::batch::Entry;
use edetail_runtime::tracking::outbox::Outbox;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn entry(id: &str) -> Entry {
    Entry {
        id: id.into(),
        json: format!("{{\"id\":\"{id}\",\"type\":\"isi_open\"}}"),
    }
}

#[wasm_bindgen_test]
async fn round_trip_survives_reopen() {
    let name = format!("test-outbox-{}", js_sys::Date::now());
    let db = Outbox::open(&name).await.expect("open");
    db.clear().await.expect("clear");
    // Keys are UUIDv7-like: key order is time order, whatever the insert order.
    let ids = [
        "0192f0c4-0000-7000-8000-000000000003",
        "0192f0c4-0000-7000-8000-000000000001",
        "0192f0c4-0000-7000-8000-000000000002",
    ];
    let entries: Vec<Entry> = ids.iter().map(|i| entry(i)).collect();
    db.put(&entries).await.expect("put");
    assert_eq!(db.count().await.expect("count"), 3);
    // Writing the same id again replaces, never duplicates.
    db.put(&entries[..1]).await.expect("put again");
    assert_eq!(db.count().await.expect("count"), 3);
    db.close();

    let db = Outbox::open(&name).await.expect("reopen");
    let read = db.read(10).await.expect("read");
    let got: Vec<&str> = read.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        got,
        [
            "0192f0c4-0000-7000-8000-000000000001",
            "0192f0c4-0000-7000-8000-000000000002",
            "0192f0c4-0000-7000-8000-000000000003"
        ]
    );
    assert_eq!(read[0], entry(ids[1]));
    assert_eq!(db.read(2).await.expect("read 2").len(), 2);

    db.delete(&[ids[0].to_string(), "not-there".to_string()])
        .await
        .expect("delete");
    assert_eq!(db.count().await.expect("count"), 2);
    db.clear().await.expect("clear");
    assert_eq!(db.count().await.expect("count"), 0);
    assert!(db.read(10).await.expect("read").is_empty());
}
