//! A small synchronous W3C WebDriver client: just the commands these tests use
//! (navigation, script, elements, actions, screenshots, window size).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use serde_json::{Value, json};

/// The W3C key of an element reference in JSON.
pub const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// W3C key codes (the WebDriver "normalised key values").
pub mod keys {
    pub const ARROW_LEFT: &str = "\u{E012}";
    pub const ARROW_RIGHT: &str = "\u{E014}";
    pub const HOME: &str = "\u{E011}";
    pub const END: &str = "\u{E010}";
    pub const ESCAPE: &str = "\u{E00C}";
    pub const BACKSPACE: &str = "\u{E003}";
}

/// Pointer kinds of W3C pointer actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointerKind {
    Touch,
    Pen,
    Mouse,
}

impl PointerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PointerKind::Touch => "touch",
            PointerKind::Pen => "pen",
            PointerKind::Mouse => "mouse",
        }
    }
}

/// An element reference.
#[derive(Debug, Clone)]
pub struct Element(pub String);

impl Element {
    fn json(&self) -> Value {
        json!({ ELEMENT_KEY: self.0 })
    }
}

/// A WebDriver session.
pub struct WebDriver {
    agent: ureq::Agent,
    /// `http://127.0.0.1:<port>`
    server: String,
    session: String,
}

impl WebDriver {
    /// Open a session on the driver at `server` with `capabilities` (alwaysMatch).
    pub fn connect(server: &str, capabilities: Value) -> Result<WebDriver> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(90)))
            .build()
            .into();
        let mut wd = WebDriver {
            agent,
            server: server.trim_end_matches('/').to_string(),
            session: String::new(),
        };
        let v = wd.raw(
            "POST",
            "/session",
            Some(json!({ "capabilities": { "alwaysMatch": capabilities } })),
        )?;
        wd.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("new session answer has no sessionId: {v}"))?
            .to_string();
        Ok(wd)
    }

    fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.server);
        let resp = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .send_json(body.unwrap_or_else(|| json!({}))),
        };
        let mut resp = resp.with_context(|| format!("WebDriver {method} {path}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("WebDriver {method} {path}: reading the answer"))?;
        let v: Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "WebDriver {method} {path}: answer is not JSON: {}",
                text.chars().take(300).collect::<String>()
            )
        })?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if status >= 400 || value.get("error").is_some_and(|e| e.is_string()) {
            bail!(
                "WebDriver {method} {path} failed ({status}): {} {}",
                value["error"].as_str().unwrap_or("?"),
                value["message"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(400)
                    .collect::<String>()
            );
        }
        Ok(value)
    }

    /// A session command (`/session/<id><path>`).
    pub fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) -> Result<()> {
        self.cmd("POST", "/url", Some(json!({ "url": url })))?;
        Ok(())
    }

    pub fn refresh(&self) -> Result<()> {
        self.cmd("POST", "/refresh", None)?;
        Ok(())
    }

    /// Run a synchronous script (`return …` gives the value).
    pub fn js(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .with_context(|| format!("script: {}", script.chars().take(120).collect::<String>()))
    }

    /// Run an asynchronous script: the last argument is the callback.
    pub fn js_async(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
        .with_context(|| {
            format!(
                "async script: {}",
                script.chars().take(120).collect::<String>()
            )
        })
    }

    /// Poll `expr` (a JS expression) until it is truthy; returns its value.
    pub fn wait_js(&self, what: &str, expr: &str, timeout: Duration) -> Result<Value> {
        let t0 = Instant::now();
        let script = format!("try {{ return ({expr}); }} catch (e) {{ return null; }}");
        loop {
            let v = self.js(&script, vec![])?;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(v);
            }
            if t0.elapsed() > timeout {
                let page = self
                    .js(
                        "return (document.body ? document.body.innerText : '').slice(0, 600)",
                        vec![],
                    )
                    .unwrap_or_default();
                bail!(
                    "timed out after {timeout:?} waiting for {what} (`{expr}`); page text: {page}"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn find(&self, css: &str) -> Result<Element> {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .with_context(|| format!("finding `{css}`"))?;
        v[ELEMENT_KEY]
            .as_str()
            .map(|s| Element(s.to_string()))
            .ok_or_else(|| anyhow!("no element reference for `{css}`: {v}"))
    }

    /// Wait until `css` matches a visible element, then (for up to 2 s) until it is not
    /// moving (no finite animation or transition running on it or an ancestor), and
    /// return it. The second wait is bounded because WebKitGTK under Xvfb can report a
    /// 220 ms CSS animation as "running" for seconds.
    pub fn wait_find(&self, css: &str, timeout: Duration) -> Result<Element> {
        let sel = serde_json::to_string(css)?;
        self.wait_js(
            &format!("`{css}`"),
            &format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return false; const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; }})()"
            ),
            timeout,
        )?;
        let _ = self.wait_js(
            &format!("`{css}` to stop moving"),
            &format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return true;
                   for (let n = e; n && n.getAnimations; n = n.parentElement)
                     if (n.getAnimations().some(a => a.playState === 'running' && a.effect && isFinite(a.effect.getComputedTiming().endTime))) return false;
                   return true; }})()"
            ),
            Duration::from_secs(2),
        );
        self.find(css)
    }

    pub fn click(&self, el: &Element) -> Result<()> {
        self.cmd("POST", &format!("/element/{}/click", el.0), None)?;
        Ok(())
    }

    /// Find and click (after waiting for it to be visible). A click refused because
    /// the element is still moving into place ("not interactable", "intercepted":
    /// a panel sliding in) is retried for up to 10 s.
    pub fn click_css(&self, css: &str) -> Result<()> {
        let t0 = Instant::now();
        loop {
            let el = self.wait_find(css, Duration::from_secs(10))?;
            match self.click(&el) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let msg = format!("{e:#}");
                    let transient = msg.contains("not interactable")
                        || msg.contains("intercepted")
                        || msg.contains("stale element");
                    if !transient || t0.elapsed() > Duration::from_secs(10) {
                        return Err(e).with_context(|| format!("clicking `{css}`"));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    pub fn send_keys(&self, el: &Element, text: &str) -> Result<()> {
        self.cmd(
            "POST",
            &format!("/element/{}/value", el.0),
            Some(json!({ "text": text })),
        )?;
        Ok(())
    }

    /// Press and release one key (W3C key action, sent to the focused element).
    pub fn press(&self, key: &str) -> Result<()> {
        self.cmd(
            "POST",
            "/actions",
            Some(json!({ "actions": [{
                "type": "key", "id": "keyboard",
                "actions": [ { "type": "keyDown", "value": key }, { "type": "keyUp", "value": key } ]
            }]})),
        )?;
        self.cmd("DELETE", "/actions", None)?;
        Ok(())
    }

    /// A straight pointer drag from `from` to `to` (viewport CSS px) in `steps` moves.
    pub fn drag(
        &self,
        kind: PointerKind,
        from: (f64, f64),
        to: (f64, f64),
        steps: u32,
    ) -> Result<()> {
        let mut acts = vec![
            json!({ "type": "pointerMove", "duration": 0, "origin": "viewport", "x": from.0.round() as i64, "y": from.1.round() as i64 }),
            json!({ "type": "pointerDown", "button": 0 }),
        ];
        for i in 1..=steps.max(1) {
            let f = f64::from(i) / f64::from(steps.max(1));
            let x = from.0 + (to.0 - from.0) * f;
            let y = from.1 + (to.1 - from.1) * f;
            acts.push(json!({ "type": "pointerMove", "duration": 16, "origin": "viewport", "x": x.round() as i64, "y": y.round() as i64 }));
        }
        acts.push(json!({ "type": "pointerUp", "button": 0 }));
        self.cmd(
            "POST",
            "/actions",
            Some(json!({ "actions": [{
                "type": "pointer", "id": format!("{}1", kind.as_str()),
                "parameters": { "pointerType": kind.as_str() },
                "actions": acts
            }]})),
        )?;
        self.cmd("DELETE", "/actions", None)?;
        Ok(())
    }

    /// A tap (touch pointer down/up without movement) at a viewport point.
    pub fn tap(&self, at: (f64, f64)) -> Result<()> {
        self.cmd(
            "POST",
            "/actions",
            Some(json!({ "actions": [{
                "type": "pointer", "id": "finger1",
                "parameters": { "pointerType": "touch" },
                "actions": [
                    { "type": "pointerMove", "duration": 0, "origin": "viewport", "x": at.0.round() as i64, "y": at.1.round() as i64 },
                    { "type": "pointerDown", "button": 0 },
                    { "type": "pause", "duration": 60 },
                    { "type": "pointerUp", "button": 0 }
                ]
            }]})),
        )?;
        self.cmd("DELETE", "/actions", None)?;
        Ok(())
    }

    /// PNG of the viewport.
    pub fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self.cmd("GET", "/screenshot", None)?;
        let b64 = v
            .as_str()
            .ok_or_else(|| anyhow!("screenshot answer is not a string"))?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .context("screenshot is not base64")
    }

    /// Resize the window so the viewport (innerWidth x innerHeight) is `w` x `h`.
    pub fn set_viewport(&self, w: u32, h: u32) -> Result<()> {
        let (mut ow, mut oh) = (i64::from(w), i64::from(h));
        for _ in 0..4 {
            self.cmd(
                "POST",
                "/window/rect",
                Some(json!({ "width": ow, "height": oh })),
            )?;
            std::thread::sleep(Duration::from_millis(150));
            let v = self.js("return [window.innerWidth, window.innerHeight]", vec![])?;
            let iw = v[0].as_i64().unwrap_or(0);
            let ih = v[1].as_i64().unwrap_or(0);
            if iw == i64::from(w) && ih == i64::from(h) {
                return Ok(());
            }
            ow += i64::from(w) - iw;
            oh += i64::from(h) - ih;
        }
        let v = self.js("return [window.innerWidth, window.innerHeight]", vec![])?;
        bail!("could not size the viewport to {w}x{h}: it is {v}")
    }

    /// End the session (best effort).
    pub fn quit(&self) {
        let _ = self.raw("DELETE", &format!("/session/{}", self.session), None);
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            self.quit();
        }
    }
}

/// Convenience for element JSON arguments to scripts.
pub fn arg(el: &Element) -> Value {
    el.json()
}
