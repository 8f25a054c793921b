//! The IndexedDB outbox (wasm32 only): one object store of `id -> event JSON`.
//!
//! Keys are the UUIDv7 event ids, so reading in key order reads oldest first. Writes
//! resolve only when the transaction has committed (`complete`), so an event reported
//! as stored survives a crash or reload.

use js_sys::{Array, Function, Promise};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbOpenDbRequest, IdbRequest, IdbTransaction, IdbTransactionMode};

use super::batch::Entry;
use super::web::js_err;

/// The database used by the runtime.
pub const DB_NAME: &str = "edetail-tracking";
pub const STORE: &str = "outbox";
const DB_VERSION: u32 = 1;

#[derive(Debug, Clone)]
pub struct Outbox {
    db: IdbDatabase,
}

/// A future for a request's `success`/`error`, resolving to `request.result`.
fn request_done(req: &IdbRequest) -> JsFuture {
    let req = req.clone();
    JsFuture::from(Promise::new(&mut |resolve: Function, reject: Function| {
        let r = req.clone();
        let ok = Closure::once_into_js(move || {
            let _ = resolve.call1(&JsValue::NULL, &r.result().unwrap_or(JsValue::UNDEFINED));
        });
        let r = req.clone();
        let err = Closure::once_into_js(move || {
            let e = r
                .error()
                .ok()
                .flatten()
                .map(JsValue::from)
                .unwrap_or_else(|| JsValue::from_str("IndexedDB request failed"));
            let _ = reject.call1(&JsValue::NULL, &e);
        });
        req.set_onsuccess(Some(ok.unchecked_ref()));
        req.set_onerror(Some(err.unchecked_ref()));
    }))
}

/// A future for a transaction's `complete` (rejects on `error`/`abort`).
fn transaction_done(tx: &IdbTransaction) -> JsFuture {
    let tx = tx.clone();
    JsFuture::from(Promise::new(&mut |resolve: Function, reject: Function| {
        let ok = Closure::once_into_js(move || {
            let _ = resolve.call0(&JsValue::NULL);
        });
        let t = tx.clone();
        let rej = reject.clone();
        let err = Closure::once_into_js(move || {
            let e = t
                .error()
                .map(JsValue::from)
                .unwrap_or_else(|| JsValue::from_str("IndexedDB transaction failed"));
            let _ = rej.call1(&JsValue::NULL, &e);
        });
        let abort = Closure::once_into_js(move || {
            let _ = reject.call1(
                &JsValue::NULL,
                &JsValue::from_str("IndexedDB transaction aborted"),
            );
        });
        tx.set_oncomplete(Some(ok.unchecked_ref()));
        tx.set_onerror(Some(err.unchecked_ref()));
        tx.set_onabort(Some(abort.unchecked_ref()));
    }))
}

impl Outbox {
    /// Open (creating if needed) the outbox database `name`.
    pub async fn open(name: &str) -> Result<Outbox, String> {
        let window = web_sys::window().ok_or("no window")?;
        let factory = window
            .indexed_db()
            .map_err(|e| js_err(&e))?
            .ok_or("IndexedDB is not available")?;
        let open: IdbOpenDbRequest = factory
            .open_with_u32(name, DB_VERSION)
            .map_err(|e| js_err(&e))?;
        let o = open.clone();
        let upgrade = Closure::once_into_js(move || {
            if let Ok(db) = o.result().and_then(|r| r.dyn_into::<IdbDatabase>())
                && !db.object_store_names().contains(STORE)
            {
                let _ = db.create_object_store(STORE);
            }
        });
        open.set_onupgradeneeded(Some(upgrade.unchecked_ref()));
        let db = request_done(&open)
            .await
            .map_err(|e| format!("opening IndexedDB: {}", js_err(&e)))?;
        let db: IdbDatabase = db
            .dyn_into()
            .map_err(|_| "IndexedDB open returned no database".to_string())?;
        // Let a future version upgrade (another tab with newer code) proceed.
        let d = db.clone();
        let on_version = Closure::<dyn FnMut()>::new(move || d.close());
        db.set_onversionchange(Some(on_version.as_ref().unchecked_ref()));
        on_version.forget();
        Ok(Outbox { db })
    }

    fn tx(
        &self,
        mode: IdbTransactionMode,
    ) -> Result<(IdbTransaction, web_sys::IdbObjectStore), String> {
        let tx = self
            .db
            .transaction_with_str_and_mode(STORE, mode)
            .map_err(|e| js_err(&e))?;
        let store = tx.object_store(STORE).map_err(|e| js_err(&e))?;
        Ok((tx, store))
    }

    /// Store entries; resolves once committed.
    pub async fn put(&self, entries: &[Entry]) -> Result<(), String> {
        if entries.is_empty() {
            return Ok(());
        }
        let (tx, store) = self.tx(IdbTransactionMode::Readwrite)?;
        let done = transaction_done(&tx);
        for e in entries {
            store
                .put_with_key(&JsValue::from_str(&e.json), &JsValue::from_str(&e.id))
                .map_err(|e| js_err(&e))?;
        }
        done.await
            .map_err(|e| format!("storing events: {}", js_err(&e)))?;
        Ok(())
    }

    /// Up to `limit` entries, oldest first.
    pub async fn read(&self, limit: u32) -> Result<Vec<Entry>, String> {
        let (tx, store) = self.tx(IdbTransactionMode::Readonly)?;
        let done = transaction_done(&tx);
        let keys = store
            .get_all_keys_with_key_and_limit(&JsValue::UNDEFINED, limit)
            .map_err(|e| js_err(&e))?;
        let values = store
            .get_all_with_key_and_limit(&JsValue::UNDEFINED, limit)
            .map_err(|e| js_err(&e))?;
        done.await
            .map_err(|e| format!("reading events: {}", js_err(&e)))?;
        let keys: Array = keys.result().map_err(|e| js_err(&e))?.unchecked_into();
        let values: Array = values.result().map_err(|e| js_err(&e))?.unchecked_into();
        Ok(keys
            .iter()
            .zip(values.iter())
            .filter_map(|(k, v)| {
                Some(Entry {
                    id: k.as_string()?,
                    json: v.as_string()?,
                })
            })
            .collect())
    }

    /// Delete entries by id; resolves once committed.
    pub async fn delete(&self, ids: &[String]) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        let (tx, store) = self.tx(IdbTransactionMode::Readwrite)?;
        let done = transaction_done(&tx);
        for id in ids {
            store
                .delete(&JsValue::from_str(id))
                .map_err(|e| js_err(&e))?;
        }
        done.await
            .map_err(|e| format!("deleting events: {}", js_err(&e)))?;
        Ok(())
    }

    pub async fn count(&self) -> Result<u32, String> {
        let (_tx, store) = self.tx(IdbTransactionMode::Readonly)?;
        let req = store.count().map_err(|e| js_err(&e))?;
        let n = request_done(&req)
            .await
            .map_err(|e| format!("counting events: {}", js_err(&e)))?;
        Ok(n.as_f64().unwrap_or(0.0) as u32)
    }

    /// Remove everything (tests, and a "reset device" action).
    pub async fn clear(&self) -> Result<(), String> {
        let (tx, store) = self.tx(IdbTransactionMode::Readwrite)?;
        let done = transaction_done(&tx);
        store.clear().map_err(|e| js_err(&e))?;
        done.await
            .map_err(|e| format!("clearing events: {}", js_err(&e)))?;
        Ok(())
    }

    pub fn close(&self) {
        self.db.close();
    }
}
