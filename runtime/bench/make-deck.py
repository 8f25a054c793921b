#!/usr/bin/env python3
"""Write a synthetic deck of N slides (default 200) for the navigation benchmark:
every 5th slide a chart, quiz or popup. usage: make-deck.py DIR [N]"""
import os, sys

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
ids = [f"s{i:03d}" for i in range(n)]
os.makedirs(os.path.join(out, "slides"), exist_ok=True)
flow = ",".join(f'"{i}"' for i in ids)
open(os.path.join(out, "deck.toml"), "w").write(f'''[deck]
id = "synthetic-{n}"
title = "Synthetic deck of {n} slides"
version = "1.0.0"
locale = "en-US"
channels = ["mr_led"]
sources = ["slides/all.md"]

[approval]
code = "SYN-{n}"
valid_from = 2026-01-01
valid_until = 2027-12-31

[theme]
primary = "#0b5cad"
accent = "#f28c28"
background = "#ffffff"
text = "#1a1a1a"
font_family = "system-ui, sans-serif"

[references.r1]
citation = "Synthetic reference."

[[flow]]
id = "main"
title = "Main"
slides = [{flow}]
''')
slides = []
for k, i in enumerate(ids):
    body = f"# Slide {k+1}\n\nSome text for slide {k+1} with a citation.[^r1]\n\n- point one\n- point two\n- point three\n"
    if k % 5 == 1:
        body += f'\n:::chart{{#c{k} type=bar title="Chart {k}"}}\nWeek,A,B\n12,-1.1,-0.3\n24,-1.4,-0.2\n:::\n'
    if k % 5 == 2:
        body += f"\n:::quiz{{#q{k}}}\nQuestion {k}?\n- [ ] no\n- [x] yes\n:::\n"
    if k % 5 == 3:
        body += f'\n:::popup{{#p{k} label="More" title="More {k}"}}\nDetails.\n:::\n'
    slides.append(f'+++\nid = "{i}"\ntitle = "Slide {k+1}"\nkey_message = "Message {k+1}"\n+++\n\n{body}')
open(os.path.join(out, "slides", "all.md"), "w").write("\n---\n".join(slides))
