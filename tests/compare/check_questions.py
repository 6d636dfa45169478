#!/usr/bin/env python3
"""Checks tests/compare/questions.jsonl against the demo corpus, without the service.

For every question it works out, from tests/demo/corpus/hikitsugi.toml and
tests/demo/config.toml, which groups the asker can see (owners, documents or the prefecture
sections of 000), and then checks that

- every line has the fields the runner accepts (it rejects unknown fields);
- every expected label is a group the asker can see under the question's filters, and with
  `exact_groups` the expected labels are exactly those groups;
- every evidence is NFKC-stable, 10-40 characters, without tab or line break, occurs verbatim
  in the NFKC-normalised corpus and lies inside its group (that owner's documents, that
  document, or that section, found by its position between the section headings);
- every `null` group contains none of the key terms listed for it in NULL_TERMS below (the
  terms a group would need to answer the question), and every `null` is listed there.

It warns (without failing) when the line holding an evidence looks like a heading, since the
runner looks for the evidence in the cited passages' text.

Usage: python3 tests/compare/check_questions.py   (exit status 1 on any error)
"""

import json
import re
import sys
import tomllib
import unicodedata
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = ROOT / "tests/compare/questions.jsonl"
CORPUS = ROOT / "tests/demo/corpus"
CONFIG = ROOT / "tests/demo/config.toml"
SECTIONED_DOC = "000_973ae0bf84c8550d.txt"

# For each (question id, label) expected to have nothing to say: terms whose absence from the
# group's text was checked. A term listed here must not occur anywhere in the group.
NULL_TERMS = {
    ("c07", "北海道"): ["共同調達", "共同利用", "共同化", "システムの共同"],
    # 北海道 mentions 「子育て世代」 once, as workshop participants; nothing on procedures.
    ("c08", "北海道"): ["妊娠", "出産", "オンライン申請", "母子", "保育", "電子申請"],
    ("c08", "山梨県"): ["子育て", "妊娠", "出産", "オンライン申請", "母子", "保育", "電子申請"],
    ("c08", "宮崎県"): ["子育て", "妊娠", "出産", "オンライン申請", "母子", "保育", "電子申請"],
    ("c09", "兵庫県"): ["避難", "要支援", "防災", "災害"],
    # 和歌山県 mentions 「大規模災害・感染症」 once, as background; nothing on evacuation.
    ("c09", "和歌山県"): ["避難", "要支援", "防災"],
    ("c11", "総務省"): ["漏水", "水道", "管路"],
    ("c11", "和歌山県"): ["漏水", "水道", "管路", "衛星"],
    # 総務省's only チャット is 「AIチャットボット」 for residents (001).
    ("c13", "総務省"): ["Slack", "スラック", "チャットツール", "LoGo", "ビジネスチャット"],
    ("c14", "兵庫県"): ["LINE", "公式アカウント"],
    ("c15", "総務省"): ["複業", "副業", "兼業"],
    ("c15", "兵庫県"): ["複業", "副業", "兼業"],
    ("c19", "市町DX支援に係る令和6年度の取組の総括と令和7年度の取組の方向性（兵庫県）"): ["出前", "講座"],
}

QUESTION_FIELDS = {"id", "question", "group_by", "org", "filters", "groups", "exact_groups", "expect"}
FILTER_FIELDS = {"owner", "kind", "doc_id"}
EXPECT_FIELDS = {"label", "evidence"}

SECTION_HEADING = re.compile(r"^別添 ?3-\d 希望する伴走支援\((.+?)\)$", re.M)


def is_japanese(ch):
    o = ord(ch)
    return (0x3040 <= o <= 0x30FF or 0x3400 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF
            or 0xFF66 <= o <= 0xFF9F or ch in "々〆ヶ「『【〔（")


def reads_as_title(title):
    return (bool(title) and is_japanese(title[0]) and len(title) <= 40
            and not any(c in title for c in "。、,")
            and title.count("(") >= title.count(")")
            and not title.endswith(tuple("がをにはでとの")))


def is_heading(line):
    """A port of detect_heading in ingest/src/structure.rs (line NFKC-normalised, trimmed)."""
    if not line or "\t" in line or len(line) > 60 or line.endswith("。"):
        return False
    if re.match(r"^(別添|別紙)\s*[0-9]", line) or re.match(r"^第[0-9一二三四五六七八九十]+[章部編]", line):
        return True
    m = re.match(r"^([0-9]{1,2})(.*)$", line)
    if m:
        rest = m.group(2)
        if rest.startswith(".") and len(rest) > 1 and (rest[1] == " " or is_japanese(rest[1])):
            return True
        if rest.startswith(" ") and reads_as_title(rest[1:]):
            return True
        if rest.startswith(")") and rest[1:].strip():
            return True
    m = re.match(r"^\(([0-9][0-9-]{0,4})\)(.*)$", line)
    if m and m.group(2).strip():
        return True
    if (line.startswith("■") and len(line) > 1) or (line.startswith("〔") and "〕" in line):
        return True
    if line.startswith("●") and reads_as_title(line[1:].lstrip()):
        return True
    return bool(re.match("^[\u2460-\u2473\u3251-\u325F\u32B1-\u32BF]", line))

def nfkc(text):
    return unicodedata.normalize("NFKC", text)


def load():
    manifest = tomllib.loads((CORPUS / "hikitsugi.toml").read_text())
    config = tomllib.loads(CONFIG.read_text())
    defaults = manifest.get("defaults", {})
    docs = []
    for path in sorted(CORPUS.glob("*.txt")):
        meta = dict(defaults)
        for entry in manifest["documents"]:
            if fnmatch(path.name, entry["path"]):
                meta.update(entry)
        meta["doc_id"] = path.name
        meta["text"] = nfkc(path.read_text())
        docs.append(meta)
    orgs = {o["id"]: o for o in config["organisations"]}
    return docs, orgs


def sections(text):
    heads = list(SECTION_HEADING.finditer(text))
    out = {}
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        out[m.group(1)] = text[m.start():end]
    return out


def readable(doc, org, orgs):
    if org is None:
        return True
    groups = set(orgs[org].get("groups", []))
    readers = set(doc["readers"])
    return doc["owner"] == org or "public" in readers or org in readers or bool(groups & readers)


def main():
    docs, orgs = load()
    errors, warnings = [], []
    counts = {"owner": 0, "document": 0, "section": 0}
    nulls = 0
    seen_ids = set()
    listed_nulls = set()
    for lineno, line in enumerate(QUESTIONS.read_text().splitlines(), 1):
        if not line.strip():
            continue
        q = json.loads(line)
        qid = q.get("id", f"line {lineno}")
        err = lambda msg: errors.append(f"{qid}: {msg}")
        if qid in seen_ids:
            err("duplicate id")
        seen_ids.add(qid)
        if set(q) - QUESTION_FIELDS:
            err(f"unknown fields {set(q) - QUESTION_FIELDS}")
        filters = q.get("filters") or {}
        if set(filters) - FILTER_FIELDS:
            err(f"unknown filters {set(filters) - FILTER_FIELDS}")
        org = q.get("org")
        if org is not None and org not in orgs:
            err(f"org {org!r} is not in the configuration")
            continue
        group_by = q["group_by"]
        counts[group_by] += 1
        scope = [
            d for d in docs
            if readable(d, org, orgs) and all(d.get(k) == v for k, v in filters.items())
        ]
        # label -> text of the group, as far as the asker can see it
        if group_by == "owner":
            groups = {}
            for d in scope:
                groups.setdefault(orgs[d["owner"]]["name"], []).append(d["text"])
            groups = {k: "\n".join(v) for k, v in groups.items()}
        elif group_by == "document":
            groups = {d["title"]: d["text"] for d in scope}
        else:
            groups = {}
            for d in scope:
                if d["doc_id"] != SECTIONED_DOC:
                    err(f"section question reaches {d['doc_id']}; filter on doc_id {SECTIONED_DOC}")
                    continue
                groups.update(sections(d["text"]))
        labels = [e["label"] for e in q["expect"]]
        if len(set(labels)) != len(labels):
            err("a label is expected twice")
        if q.get("exact_groups") and set(labels) != set(groups):
            err(f"exact_groups: expected {sorted(labels)}, the asker sees {sorted(groups)}")
        for e in q["expect"]:
            if set(e) - EXPECT_FIELDS:
                err(f"unknown expect fields {set(e) - EXPECT_FIELDS}")
            label, evidence = e["label"], e["evidence"]
            if label not in groups:
                err(f"{label!r} is not a group the asker can see ({sorted(groups)})")
                continue
            text = groups[label]
            if evidence is None:
                nulls += 1
                listed_nulls.add((qid, label))
                terms = NULL_TERMS.get((qid, label))
                if not terms:
                    err(f"{label}: null without key terms in NULL_TERMS")
                    continue
                for term in terms:
                    if term in text:
                        at = text.index(term)
                        err(f"{label}: null, but {term!r} occurs: …{text[max(0, at - 30):at + 30]!r}…")
                continue
            if evidence != nfkc(evidence):
                err(f"{label}: evidence is not NFKC-normalised: {evidence!r}")
            if not 10 <= len(evidence) <= 40:
                err(f"{label}: evidence has {len(evidence)} characters (10-40)")
            if "\t" in evidence or "\n" in evidence:
                err(f"{label}: evidence holds a tab or line break")
            if evidence not in text:
                where = [name for name, other in groups.items() if evidence in other]
                all_text = "\n".join(d["text"] for d in docs)
                if where:
                    err(f"{label}: evidence {evidence!r} lies in another group: {where}")
                elif evidence in all_text:
                    err(f"{label}: evidence {evidence!r} is outside every group the asker sees")
                else:
                    err(f"{label}: evidence {evidence!r} is not in the corpus")
                continue
            at = text.index(evidence)
            line_start = text.rfind("\n", 0, at) + 1
            line_end = text.find("\n", at)
            holding = text[line_start:line_end if line_end >= 0 else None].strip()
            if is_heading(holding):
                warnings.append(f"{qid}: {label}: evidence sits on a heading-like line: {holding!r}")
            others = [name for name, other in groups.items() if name != label and evidence in other]
            if others:
                warnings.append(f"{qid}: {label}: evidence also occurs in {others}")
    for key in NULL_TERMS:
        if key not in listed_nulls:
            errors.append(f"NULL_TERMS lists {key}, which is no null expectation")
    for w in warnings:
        print("warning:", w)
    for e in errors:
        print("error:", e)
    total = sum(counts.values())
    print(f"{total} questions ({counts['section']} section, {counts['owner']} owner, "
          f"{counts['document']} document), {nulls} null expectations, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
