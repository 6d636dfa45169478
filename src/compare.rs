//! One question answered per group — per owning organisation, per document, or per top-level
//! section — so that a coordinator can set side by side how each prefecture did the same thing.
//!
//! Each group is searched with its own filter inside the caller's scope, not cut out of one
//! global top-k list: a group with little text still gets its best passages, and a group with
//! nothing to say says so instead of borrowing another group's text.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::answer::Answer;
use crate::generate::Synthesis;
use crate::retrieve::PassageFilters;
use crate::store::{DocumentMeta, StoredChunk};

/// Most groups one comparison answers; more must be narrowed with filters or named groups.
pub const MAX_GROUPS: usize = 20;

/// What the answers are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One group per owning organisation.
    Owner,
    /// One group per document.
    Document,
    /// One group per top-level section (first heading of the heading path).
    Section,
}

impl FromStr for GroupBy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "owner" => Ok(Self::Owner),
            "document" => Ok(Self::Document),
            "section" => Ok(Self::Section),
            other => Err(format!(
                "unknown grouping {other:?}: use owner, document or section"
            )),
        }
    }
}

/// One group to answer: its key (an organisation id, a doc id or a heading), the label people
/// read, and the filter that keeps its passages.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub key: String,
    pub label: String,
    /// `None` when the group lies outside the base filters (an owner other than the filtered
    /// one, say): it has no passages.
    pub filters: Option<PassageFilters>,
}

/// A group and its answer, made only of the group's passages.
#[derive(Debug, Clone)]
pub struct GroupAnswer {
    pub key: String,
    pub label: String,
    pub answer: Answer,
}

/// The answers of a comparison, in group order.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub question: String,
    pub group_by: GroupBy,
    pub groups: Vec<GroupAnswer>,
    /// What the groups have in common and where they differ, when asked for.
    pub synthesis: Option<Synthesis>,
}

/// The top-level sections of a document: the distinct first headings of its chunks, in
/// document order.
pub fn document_sections(chunks: &[StoredChunk]) -> Vec<String> {
    let mut seen = HashSet::new();
    chunks
        .iter()
        .filter_map(|chunk| chunk.heading_path.first())
        .filter(|heading| seen.insert(heading.as_str()))
        .cloned()
        .collect()
}

/// The sections of recently compared documents, by doc id and version, so that a section
/// comparison does not read every chunk of its documents on every request. A new version of
/// a document is a new key: nothing needs invalidating, and the oldest entries leave first
/// once the cache holds [`SectionCache::CAPACITY`] documents.
#[derive(Debug, Default)]
pub struct SectionCache {
    entries: Mutex<CachedSections>,
}

#[derive(Debug, Default)]
struct CachedSections {
    sections: HashMap<(String, String), Arc<[String]>>,
    /// Keys in the order they were added, oldest first.
    order: VecDeque<(String, String)>,
}

impl SectionCache {
    /// Most documents whose sections are kept.
    pub const CAPACITY: usize = 256;

    /// The sections of `document`, from the cache or else from `load` (which reads them from
    /// the store; its error is returned and nothing is cached).
    pub fn sections<E>(
        &self,
        document: &DocumentMeta,
        load: impl FnOnce() -> Result<Vec<String>, E>,
    ) -> Result<Arc<[String]>, E> {
        let key = (document.doc_id.clone(), document.version.clone());
        if let Some(sections) = self.lock().sections.get(&key) {
            return Ok(sections.clone());
        }
        // Loaded outside the lock: two requests may both read a document once, which is
        // cheaper than making every other comparison wait for the read.
        let sections: Arc<[String]> = load()?.into();
        let mut cached = self.lock();
        if cached
            .sections
            .insert(key.clone(), sections.clone())
            .is_none()
        {
            cached.order.push_back(key);
            while cached.order.len() > Self::CAPACITY {
                if let Some(oldest) = cached.order.pop_front() {
                    cached.sections.remove(&oldest);
                }
            }
        }
        Ok(sections)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CachedSections> {
        // The map stays consistent whatever a panicking holder was doing: each change is
        // one insert or remove.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The groups of `documents` (already limited to the caller's scope and the base filters),
/// in a stable order: owners and documents by key, sections in the order they first appear.
/// `sections` are the first headings of each document's chunks, in document order; only used
/// for [`GroupBy::Section`].
pub fn groups(
    group_by: GroupBy,
    documents: &[DocumentMeta],
    sections: &[String],
    base: &PassageFilters,
    organisation_name: &dyn Fn(&str) -> String,
) -> Vec<Group> {
    match group_by {
        GroupBy::Owner => {
            let owners: BTreeSet<&str> = documents
                .iter()
                .map(|document| document.owner.as_str())
                .collect();
            owners
                .into_iter()
                .map(|owner| group(group_by, owner, organisation_name(owner), base))
                .collect()
        }
        GroupBy::Document => documents
            .iter()
            .map(|document| group(group_by, &document.doc_id, document.title.clone(), base))
            .collect(),
        GroupBy::Section => {
            let mut seen = HashSet::new();
            sections
                .iter()
                .filter(|heading| seen.insert(heading.as_str()))
                .map(|heading| group(group_by, heading, section_label(heading), base))
                .collect()
        }
    }
}

/// The groups named by the caller, in the caller's order. A key that is not among `known`
/// (unreadable, or nonexistent: the two look the same) still becomes a group, searched inside
/// the scope like any other, so it comes back empty rather than as an error that would tell
/// the two apart.
pub fn named_groups(
    group_by: GroupBy,
    keys: &[String],
    known: &[Group],
    base: &PassageFilters,
    organisation_name: &dyn Fn(&str) -> String,
) -> Vec<Group> {
    let mut seen = HashSet::new();
    keys.iter()
        .filter(|key| seen.insert(key.as_str()))
        .map(|key| match known.iter().find(|group| &group.key == key) {
            Some(group) => group.clone(),
            None => {
                let label = match group_by {
                    GroupBy::Owner => organisation_name(key),
                    GroupBy::Document => key.clone(),
                    GroupBy::Section => section_label(key),
                };
                group(group_by, key, label, base)
            }
        })
        .collect()
}

/// A group with the base filters narrowed to it.
fn group(group_by: GroupBy, key: &str, label: String, base: &PassageFilters) -> Group {
    let mut filters = base.clone();
    let slot = match group_by {
        GroupBy::Owner => &mut filters.store.owner,
        GroupBy::Document => &mut filters.store.doc_id,
        GroupBy::Section => &mut filters.store.section,
    };
    let inside_base = slot.as_deref().is_none_or(|existing| existing == key);
    *slot = Some(key.to_owned());
    Group {
        key: key.to_owned(),
        label,
        filters: inside_base.then_some(filters),
    }
}

/// The question as each group is asked it: without the words that spread it over the groups
/// (「各道府県が」, 「それぞれの」), which no one group's passages contain and which would make
/// every group look as if it had only part of an answer.
pub fn group_question(question: &str) -> String {
    static DISTRIBUTIVE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?:各(?:都道府県|道府県|府県|県|市区町村|市町村|市町|自治体|団体|組織|地域|省庁|部署)|それぞれ)(?:では|での|が|の|は|で|に)?",
        )
        .expect("valid regex")
    });
    let asked = DISTRIBUTIVE.replace_all(question, "");
    let asked = asked.trim();
    if asked.chars().count() < 2 {
        question.to_owned()
    } else {
        asked.to_owned()
    }
}

/// The label of a top-level section: the heading without its numbering (「別添 3-1」,
/// 「第2章」, 「(1)」, 「①」…), or the place it names in closing brackets
/// (「希望する伴走支援（北海道）」 → 「北海道」).
pub fn section_label(heading: &str) -> String {
    static NUMBERING: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"^\s*(?:(?:別添|別紙|別表|別記|参考|資料|様式)\s*[0-9０-９]+(?:\s*[-‐－ー.．]\s*[0-9０-９]+)*|第\s*[0-9０-９一二三四五六七八九十百]+\s*[章節部編条項]|[\(（]\s*[0-9０-９一二三四五六七八九十]+\s*[\)）]|[0-9０-９]+(?:[.．][0-9０-９]+)*\s*[.．、)）]?|[①-⑳]|[一二三四五六七八九十]+\s*[、．.])\s*",
        )
        .expect("valid regex")
    });
    static NAMED_PLACE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"[\(（]\s*([^()（）\s]{1,10}?(?:都|道|府|県|市|区|町|村))\s*[\)）]\s*$")
            .expect("valid regex")
    });
    let heading = heading.trim();
    if let Some(place) = NAMED_PLACE.captures(heading) {
        return place[1].to_owned();
    }
    let without_number = NUMBERING.replace(heading, "");
    let label = without_number.trim();
    if label.is_empty() {
        heading.to_owned()
    } else {
        label.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SearchFilters;

    fn document(doc_id: &str, owner: &str, title: &str) -> DocumentMeta {
        DocumentMeta {
            doc_id: doc_id.to_owned(),
            version: "v1".to_owned(),
            title: title.to_owned(),
            owner: owner.to_owned(),
            readers: vec![owner.to_owned()],
            kind: "plan".to_owned(),
            date: None,
            ingested_at: 0,
            chunk_count: 1,
            page_count: 1,
            paged: true,
            source: String::new(),
        }
    }

    fn names(id: &str) -> String {
        match id {
            "pref-hyogo" => "兵庫県".to_owned(),
            other => other.to_owned(),
        }
    }

    #[test]
    fn section_labels_drop_numbering_or_name_the_place() {
        assert_eq!(section_label("別添 3-1 希望する伴走支援(北海道)"), "北海道");
        assert_eq!(
            section_label("別添3-5 希望する伴走支援（沖縄県）"),
            "沖縄県"
        );
        assert_eq!(section_label("第2章 推進体制"), "推進体制");
        assert_eq!(section_label("(1) 人材育成"), "人材育成");
        assert_eq!(section_label("① 共同調達"), "共同調達");
        assert_eq!(section_label("3. 予算"), "予算");
        assert_eq!(section_label("推進体制(案)"), "推進体制(案)");
        assert_eq!(section_label("はじめに"), "はじめに");
        assert_eq!(section_label("別添 3"), "別添 3", "a bare number stays");
    }

    #[test]
    fn each_group_is_asked_without_the_words_that_spread_the_question() {
        assert_eq!(
            group_question("各道府県が希望する伴走支援の内容は"),
            "希望する伴走支援の内容は"
        );
        assert_eq!(group_question("それぞれの人材育成の方法"), "人材育成の方法");
        assert_eq!(group_question("各県"), "各県", "nothing would be left");
        assert_eq!(group_question("共同調達の取組"), "共同調達の取組");
    }

    #[test]
    fn owner_groups_are_one_per_owner_with_their_names() {
        let documents = [
            document("b", "pref-hyogo", "B"),
            document("a", "soumu", "A"),
            document("c", "pref-hyogo", "C"),
        ];
        let found = groups(
            GroupBy::Owner,
            &documents,
            &[],
            &PassageFilters::default(),
            &names,
        );
        let keys: Vec<(&str, &str)> = found
            .iter()
            .map(|group| (group.key.as_str(), group.label.as_str()))
            .collect();
        assert_eq!(keys, [("pref-hyogo", "兵庫県"), ("soumu", "soumu")]);
        let filters = found[0].filters.as_ref().expect("inside the base filters");
        assert_eq!(filters.store.owner.as_deref(), Some("pref-hyogo"));
    }

    #[test]
    fn section_groups_keep_document_order_and_the_base_filters() {
        let base = PassageFilters {
            store: SearchFilters {
                doc_id: Some("000.txt".to_owned()),
                ..SearchFilters::default()
            },
            ..PassageFilters::default()
        };
        let sections = [
            "別添 3-2 (山梨県)",
            "別添 3-1 (北海道)",
            "別添 3-2 (山梨県)",
        ]
        .map(String::from);
        let found = groups(GroupBy::Section, &[], &sections, &base, &names);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].label, "山梨県");
        let filters = found[1].filters.as_ref().expect("inside the base filters");
        assert_eq!(filters.store.doc_id.as_deref(), Some("000.txt"));
        assert_eq!(filters.store.section.as_deref(), Some("別添 3-1 (北海道)"));
    }

    #[test]
    fn sections_are_read_once_per_document_version() {
        let cache = SectionCache::default();
        let reads = std::cell::Cell::new(0);
        let load = || {
            reads.set(reads.get() + 1);
            Ok::<_, ()>(vec!["別添 3-1 (北海道)".to_owned()])
        };
        let first = document("000.txt", "soumu", "A");
        assert_eq!(
            &*cache.sections(&first, load).unwrap(),
            ["別添 3-1 (北海道)"]
        );
        assert_eq!(
            &*cache.sections(&first, load).unwrap(),
            ["別添 3-1 (北海道)"]
        );
        assert_eq!(reads.get(), 1);
        let replaced = DocumentMeta {
            version: "v2".to_owned(),
            ..first.clone()
        };
        cache.sections(&replaced, load).unwrap();
        assert_eq!(reads.get(), 2, "a new version is read again");
        assert!(cache.sections(&first, || Err(())).is_ok());
        let unreadable = document("001.txt", "soumu", "B");
        assert!(cache.sections(&unreadable, || Err(())).is_err());
        assert!(
            cache.sections(&unreadable, load).is_ok(),
            "an error is not cached"
        );
    }

    #[test]
    fn the_section_cache_forgets_the_oldest_documents() {
        let cache = SectionCache::default();
        let load = || Ok::<_, ()>(Vec::new());
        for index in 0..=SectionCache::CAPACITY {
            cache
                .sections(&document(&format!("{index}.txt"), "soumu", "A"), load)
                .unwrap();
        }
        let oldest = document("0.txt", "soumu", "A");
        assert!(cache.sections(&oldest, || Err(())).is_err(), "evicted");
        let newest = document(&format!("{}.txt", SectionCache::CAPACITY), "soumu", "A");
        assert!(cache.sections(&newest, || Err(())).is_ok());
    }

    #[test]
    fn a_group_outside_the_base_filter_finds_nothing() {
        let base = PassageFilters::from(SearchFilters {
            owner: Some("soumu".to_owned()),
            ..SearchFilters::default()
        });
        let known = groups(
            GroupBy::Owner,
            &[document("a", "soumu", "A")],
            &[],
            &base,
            &names,
        );
        let named = named_groups(
            GroupBy::Owner,
            &["pref-hyogo".to_owned(), "soumu".to_owned()],
            &known,
            &base,
            &names,
        );
        assert_eq!(named[0].label, "兵庫県");
        assert_eq!(named[0].filters, None);
        assert_eq!(named[1], known[0]);
    }
}
