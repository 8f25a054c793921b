//! Canvas scaling: slides are laid out on a fixed logical canvas (design units) and
//! scaled with a CSS transform to fit the stage (the viewport minus safe-area insets
//! and the control bar), centred, never cropped.

/// Landscape design canvas (iPad 4:3).
pub const LANDSCAPE: (f64, f64) = (1024.0, 768.0);
/// Portrait design canvas (iPad portrait).
pub const PORTRAIT: (f64, f64) = (768.0, 1024.0);
/// Narrow portrait canvas for phones: text stays readable.
pub const PHONE: (f64, f64) = (540.0, 960.0);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub canvas_w: f64,
    pub canvas_h: f64,
    pub scale: f64,
    /// Offset of the scaled canvas inside the stage, px.
    pub left: f64,
    pub top: f64,
}

impl Fit {
    /// The CSS class naming the canvas orientation (`landscape`, `portrait`, `phone`).
    pub fn class(&self) -> &'static str {
        if self.canvas_w > self.canvas_h {
            "landscape"
        } else if self.canvas_w < PORTRAIT.0 {
            "phone"
        } else {
            "portrait"
        }
    }

    /// Inline style for the canvas element. Numbers are written with integer
    /// arithmetic ([`fixed`]): float formatting would add kilobytes to the wasm.
    pub fn style(&self) -> String {
        format!(
            "width:{}px;height:{}px;transform:translate({}px,{}px) scale({})",
            self.canvas_w as i64,
            self.canvas_h as i64,
            fixed(self.left, 2),
            fixed(self.top, 2),
            fixed(self.scale, 5)
        )
    }
}

/// `v` with `places` decimals (rounded), without float formatting.
pub fn fixed(v: f64, places: u32) -> String {
    let m = 10i64.pow(places);
    let n = if v.is_finite() {
        (v * m as f64).round() as i64
    } else {
        0
    };
    let sign = if n < 0 { "-" } else { "" };
    let n = n.unsigned_abs();
    let m = m as u64;
    if places == 0 {
        return format!("{sign}{n}");
    }
    format!("{sign}{}.{:0width$}", n / m, n % m, width = places as usize)
}

/// Choose the canvas for a stage of `w` x `h` px and fit it.
pub fn fit(w: f64, h: f64) -> Fit {
    let w = if w.is_finite() && w > 1.0 { w } else { 1.0 };
    let h = if h.is_finite() && h > 1.0 { h } else { 1.0 };
    let (cw, ch) = if w >= h {
        LANDSCAPE
    } else if w < 600.0 {
        PHONE
    } else {
        PORTRAIT
    };
    let scale = (w / cw).min(h / ch);
    Fit {
        canvas_w: cw,
        canvas_h: ch,
        scale,
        left: (w - cw * scale) / 2.0,
        top: (h - ch * scale) / 2.0,
    }
}

/// Fit on a `w` x `h` stage whose rightmost `gutter` px must stay free (the MR tray
/// handle): the canvas is chosen and scaled for `w - gutter`, then centred on the whole
/// stage as far as the gutter allows, so the margins stay as even as they can.
pub fn fit_beside(w: f64, h: f64, gutter: f64) -> Fit {
    let w = if w.is_finite() && w > 1.0 { w } else { 1.0 };
    let gutter = if gutter.is_finite() {
        gutter.clamp(0.0, w - 1.0)
    } else {
        0.0
    };
    let mut f = fit(w - gutter, h);
    let used = f.canvas_w * f.scale;
    f.left = ((w - used) / 2.0).min(w - gutter - used).max(0.0);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gutter_stays_free_and_margins_stay_even() {
        // iPad sizes minus the 64 px bar, 44 px handle gutter.
        for (w, h) in [
            (1024.0, 704.0),
            (1366.0, 960.0),
            (810.0, 1016.0),
            (390.0, 780.0),
        ] {
            let f = fit_beside(w, h, 44.0);
            let right = f.left + f.canvas_w * f.scale;
            assert!(right <= w - 44.0 + 1e-9, "{w}x{h}: canvas under the handle");
            assert!(f.left >= 0.0 && f.canvas_h * f.scale <= h + 1e-9);
            // Height-limited iPad stages keep the scale of the gutter-less fit.
            if w > h {
                assert!(close(f.scale, fit(w, h).scale), "{w}x{h}: scale lost");
                // Centred as far as the gutter allows: the left margin is at most
                // the handle's width away from the right one.
                assert!(w - right - f.left <= 44.0 + 1e-9);
            }
        }
        // 1024x704: centred would be 42.4 px each side; the gutter needs 44 on the right.
        let f = fit_beside(1024.0, 704.0, 44.0);
        assert!(close(f.left, 1024.0 - 44.0 - 1024.0 * f.scale));
        // No gutter: the plain fit.
        assert_eq!(fit_beside(1024.0, 704.0, 0.0), fit(1024.0, 704.0));
        assert!(fit_beside(f64::NAN, 10.0, f64::NAN).scale > 0.0);
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn ipad_landscape_fills_width() {
        let f = fit(1024.0, 768.0);
        assert_eq!((f.canvas_w, f.canvas_h), LANDSCAPE);
        assert!(close(f.scale, 1.0));
        assert!(close(f.left, 0.0) && close(f.top, 0.0));
        assert_eq!(f.class(), "landscape");
    }

    #[test]
    fn wider_stage_is_pillarboxed_and_centred() {
        // 1180x820 iPad Air minus a 56 px control bar.
        let f = fit(1180.0, 764.0);
        assert!(close(f.scale, 764.0 / 768.0));
        assert!(f.left > 0.0);
        assert!(close(f.left * 2.0 + 1024.0 * f.scale, 1180.0));
        assert!(close(f.top, 0.0));
    }

    #[test]
    fn portrait_and_phone_canvases() {
        let f = fit(810.0, 1024.0);
        assert_eq!(f.class(), "portrait");
        assert!(close(f.scale, 1.0));
        let p = fit(390.0, 780.0);
        assert_eq!(p.class(), "phone");
        assert!(p.canvas_w * p.scale <= 390.0 + 1e-9);
        assert!(p.canvas_h * p.scale <= 780.0 + 1e-9);
    }

    #[test]
    fn never_crops_and_survives_garbage() {
        for (w, h) in [
            (1366.0, 968.0),
            (320.0, 480.0),
            (2560.0, 1300.0),
            (700.0, 300.0),
        ] {
            let f = fit(w, h);
            assert!(f.canvas_w * f.scale <= w + 1e-9 && f.canvas_h * f.scale <= h + 1e-9);
            assert!(f.left >= -1e-9 && f.top >= -1e-9);
        }
        let g = fit(f64::NAN, 0.0);
        assert!(g.scale.is_finite() && g.scale > 0.0);
        assert!(fit(1024.0, 768.0).style().contains("scale(1.00000)"));
        assert_eq!(
            fit(1024.0, 768.0).style(),
            "width:1024px;height:768px;transform:translate(0.00px,0.00px) scale(1.00000)"
        );
    }

    #[test]
    fn fixed_point_formatting() {
        assert_eq!(fixed(1.0, 5), "1.00000");
        assert_eq!(fixed(0.994_79, 3), "0.995");
        assert_eq!(fixed(-3.456, 2), "-3.46");
        assert_eq!(fixed(-0.004, 2), "0.00");
        assert_eq!(fixed(77.4, 0), "77");
        assert_eq!(fixed(f64::NAN, 2), "0.00");
    }
}
