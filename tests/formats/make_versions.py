#!/usr/bin/env python3
"""Writes a Word and a PowerPoint version of each corpus text, for the seed eval on office files.

    make_versions.py BINARY TEXT_DIR OUT_DIR

Each text is read by `BINARY extract --markdown`, which marks the headings hikitsugi's text
reader finds as Markdown headings by level. From that:
  OUT_DIR/docx/<stem>.docx  python-docx: each heading a "Heading n" paragraph (n = its level),
                            every other non-empty line a paragraph, a page break at each form feed
  OUT_DIR/pptx/<stem>.pptx  python-pptx: one "Title and Content" slide per section, the heading
                            its title (as in a deck: the slide title only, not the path above it)
                            and the section's lines its body, split over slides of at most
                            MAX_SLIDE_CHARS characters titled alike
Needs (PyPI): python-docx, python-pptx.
"""

import os
import re
import subprocess
import sys

import docx
from pptx import Presentation

MAX_SLIDE_CHARS = 800
HEADING = re.compile(r"^(#{1,6}) (.+)$")


def sections(markdown):
    """(heading or None, [lines]) in order; form feeds dropped."""
    found = [(None, [])]
    for line in markdown.replace("\f", "\n").splitlines():
        heading = HEADING.match(line)
        if heading:
            found.append(((len(heading.group(1)), heading.group(2).strip()), []))
        elif line.strip():
            found[-1][1].append(line.strip())
    return [(heading, lines) for heading, lines in found if heading or lines]


def write_docx(markdown, path):
    document = docx.Document()
    for index, page in enumerate(markdown.split("\f")):
        if index:
            document.add_page_break()
        for line in page.splitlines():
            heading = HEADING.match(line)
            if heading:
                document.add_heading(heading.group(2).strip(), level=len(heading.group(1)))
            elif line.strip():
                document.add_paragraph(line.strip())
    document.save(path)


def slide_bodies(lines):
    body, size = [], 0
    for line in lines:
        if body and size + len(line) > MAX_SLIDE_CHARS:
            yield body
            body, size = [], 0
        body.append(line)
        size += len(line)
    yield body


def write_pptx(markdown, path):
    deck = Presentation()
    layout = deck.slide_layouts[1]  # Title and Content
    for heading, lines in sections(markdown):
        for body in slide_bodies(lines):
            slide = deck.slides.add_slide(layout)
            if heading:
                slide.shapes.title.text = heading[1]
            else:
                slide.shapes.title.element.getparent().remove(slide.shapes.title.element)
            frame = slide.placeholders[1].text_frame
            for index, line in enumerate(body):
                paragraph = frame.paragraphs[0] if index == 0 else frame.add_paragraph()
                paragraph.text = line
    deck.save(path)


def main():
    binary, text_dir, out_dir = sys.argv[1:4]
    for kind in ("docx", "pptx"):
        os.makedirs(os.path.join(out_dir, kind), exist_ok=True)
    for name in sorted(os.listdir(text_dir)):
        if not name.endswith(".txt"):
            continue
        stem = name[: -len(".txt")]
        markdown = subprocess.run(
            [binary, "extract", "--markdown", os.path.join(text_dir, name)],
            check=True, capture_output=True, text=True,
        ).stdout
        write_docx(markdown, os.path.join(out_dir, "docx", stem + ".docx"))
        write_pptx(markdown, os.path.join(out_dir, "pptx", stem + ".pptx"))


if __name__ == "__main__":
    main()
