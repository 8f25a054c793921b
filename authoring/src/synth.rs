//! A synthetic deck generator for benchmarks and stress tests: `n` slides that,
//! together, use every component (each slide carries text, a citation and a link, plus
//! one heavier component in rotation), with about one slide in ten a detail slide.

use std::fmt::Write as _;
use std::path::Path;

/// Slides per source file.
const PER_FILE: usize = 50;

/// Write a synthetic deck of `n` slides (n >= 1) into `dir` (created if needed).
pub fn write_deck(dir: &Path, n: usize) -> std::io::Result<()> {
    let n = n.max(1);
    std::fs::create_dir_all(dir.join("slides"))?;
    std::fs::create_dir_all(dir.join("assets"))?;
    for (name, bytes) in crate::scaffold::files("2026-01-01") {
        if name.starts_with("assets/") || name == "isi.md" {
            std::fs::write(dir.join(name), bytes)?;
        }
    }
    let id = |i: usize| format!("s{i:05}");
    let detail = |i: usize| i % 10 == 9;
    // Manifest.
    let files = n.div_ceil(PER_FILE);
    let mut deck = String::new();
    let _ = write!(
        deck,
        "[deck]\nid = \"synthetic-{n}\"\ntitle = \"Synthetic deck of {n} slides\"\nversion = \"1.0.0\"\nlocale = \"en-US\"\nproduct = \"Zentara (zentaripine)\"\nchannels = [\"mr_led\", \"self_serve\"]\nsources = ["
    );
    for f in 0..files {
        let _ = write!(
            deck,
            "{}\"slides/{f:04}.md\"",
            if f == 0 { "" } else { ", " }
        );
    }
    deck.push_str("]\n\n[approval]\ncode = \"SYN-1\"\nvalid_from = 2026-01-01\nvalid_until = 2099-12-31\n\n[isi]\ntitle = \"Important safety information\"\nfile = \"isi.md\"\n\n[theme]\nprimary = \"#0b5cad\"\naccent = \"#f28c28\"\nlogo = \"assets/logo.svg\"\n\n");
    let refs = 20;
    for r in 0..refs {
        let _ = write!(
            deck,
            "[references.ref{r}]\ncitation = \"Author {r} et al. A synthetic reference number {r}. J Synth. 2026;{r}:1-10.\"\n\n"
        );
    }
    let main: Vec<usize> = (0..n).filter(|&i| !detail(i)).collect();
    for (k, chunk) in main.chunks(10).enumerate() {
        let _ = write!(
            deck,
            "[[flow]]\nid = \"section-{k}\"\ntitle = \"Section {k}\"\nslides = ["
        );
        for (j, &i) in chunk.iter().enumerate() {
            let _ = write!(deck, "{}\"{}\"", if j == 0 { "" } else { ", " }, id(i));
        }
        deck.push_str("]\n\n");
    }
    std::fs::write(dir.join("deck.toml"), deck)?;

    // Slides.
    for f in 0..files {
        let mut out = String::new();
        for i in f * PER_FILE..((f + 1) * PER_FILE).min(n) {
            if i % PER_FILE != 0 {
                out.push_str("\n---\n\n");
            }
            let layout = if i % 13 == 5 { "two-column" } else { "default" };
            let _ = write!(
                out,
                "+++\nid = \"{}\"\ntitle = \"Slide {i}\"\nkey_message = \"Key message of slide {i}.\"\ntags = [\"t{}\"]\nlayout = \"{layout}\"\n+++\n\n# Slide {i}\n\nSome **bold** text with a citation.[^ref{}] A | table\n\n| Arm | Change |\n|---|---|\n| Zentara | -1.4% |\n| Placebo | -0.2% |\n\n",
                id(i),
                i % 7,
                i % refs
            );
            // A link: to the detail slide that follows, or back to the first slide.
            if i + 1 < n && detail(i + 1) {
                let _ = write!(out, "See the [details](#{}).\n\n", id(i + 1));
            } else {
                let _ = write!(out, "Back to the [start](#{}).\n\n", id(0));
            }
            if layout == "two-column" {
                let _ = write!(
                    out,
                    "::::columns\n:::column\nLeft column.[^ref{}]\n:::\n:::column\n![Mechanism of action](assets/moa.svg)\n:::\n::::\n\n",
                    (i + 1) % refs
                );
            } else {
                out.push_str(&component(i));
            }
            let _ = write!(out, "Note:\nSpeaker notes for slide {i}.\n");
        }
        std::fs::write(dir.join(format!("slides/{f:04}.md")), out)?;
    }
    Ok(())
}

fn component(i: usize) -> String {
    match i % 12 {
        0 => "::::tabs\n:::tab{label=\"Adults\"}\n10 mg once daily.\n:::\n:::tab{label=\"Renal\"}\n5 mg when eGFR < 45.\n:::\n::::\n\n".into(),
        1 => ":::chart{type=bar title=\"HbA1c change\" unit=\"%\"}\nWeek,Zentara,Placebo\n12,-1.1,-0.3\n24,-1.4,-0.2\n:::\n\n".into(),
        2 => ":::quiz\nWhich mechanism?\n- [ ] Insulin only\n- [x] Dual inhibition\n- [ ] Gastric emptying\n> Dual inhibition.\n:::\n\n".into(),
        3 => ":::popup{label=\"Pharmacokinetics\"}\nHalf-life 14 h.[^ref3]\n:::\n\n".into(),
        4 => ":::chart{type=forest title=\"Subgroups\" reference=0}\nSubgroup,Estimate,Low,High\nAge < 65,-1.3,-1.6,-1.0\nAge >= 65,-1.1,-1.5,-0.7\n:::\n\n".into(),
        5 => ":::poll{kind=multiple}\nWhom would you treat?\n- Newly diagnosed\n- On metformin\n- Elderly\n:::\n\n".into(),
        6 => "![Mechanism of action](assets/moa.svg)\n\n".into(),
        7 => ":::chart{type=line title=\"Weight\" unit=\" kg\"}\nWeek,Zentara,Placebo\n0,0,0\n12,-1.2,-0.2\n24,-2.1,-0.4\n:::\n\n".into(),
        8 => ":::survey{kind=rating min=1 max=5 min_label=\"Low\" max_label=\"High\"}\nHow useful?\n:::\n\n:::survey{kind=text}\nAnything else?\n:::\n\n".into(),
        9 => "::video{src=\"assets/dosing.mp4\" poster=\"assets/dosing-poster.svg\" title=\"How to take\" captions=\"assets/dosing.vtt\"}\n\n".into(),
        10 => "::::accordion\n:::tab{label=\"Hypoglycaemia\"}\nSimilar to placebo.\n:::\n:::tab{label=\"Renal\"}\nUse 5 mg.\n:::\n::::\n\n".into(),
        _ => ":::step\nFirst point.\n:::\n:::step\nSecond point.\n:::\n\n".into(),
    }
}
