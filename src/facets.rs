//! How many readable documents and passages there are per owner, kind and year: the filters a
//! person can narrow a search with. Counted only over documents the caller may read, so that no
//! count tells of anything else.

use std::collections::BTreeMap;

use crate::store::DocumentMeta;

/// Documents and their passages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub documents: u64,
    pub passages: u64,
}

impl Count {
    fn add(&mut self, document: &DocumentMeta) {
        self.documents += 1;
        self.passages += u64::from(document.chunk_count);
    }
}

/// Counts per value of each field, values in ascending order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facets {
    pub total: Count,
    pub owners: BTreeMap<String, Count>,
    pub kinds: BTreeMap<String, Count>,
    /// By the year of the document's date; undated documents under `None`.
    pub years: BTreeMap<Option<String>, Count>,
}

/// The facets of `documents`, which must already be limited to the caller's scope.
pub fn facets(documents: &[DocumentMeta]) -> Facets {
    let mut facets = Facets::default();
    for document in documents {
        facets.total.add(document);
        facets
            .owners
            .entry(document.owner.clone())
            .or_default()
            .add(document);
        facets
            .kinds
            .entry(document.kind.clone())
            .or_default()
            .add(document);
        let year = document
            .date
            .as_deref()
            .and_then(|date| date.get(..4))
            .map(str::to_owned);
        facets.years.entry(year).or_default().add(document);
    }
    facets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(owner: &str, kind: &str, date: Option<&str>, chunks: u32) -> DocumentMeta {
        DocumentMeta {
            doc_id: format!("{owner}-{kind}-{chunks}"),
            version: "v1".to_owned(),
            title: "t".to_owned(),
            owner: owner.to_owned(),
            readers: vec![owner.to_owned()],
            kind: kind.to_owned(),
            date: date.map(str::to_owned),
            ingested_at: 0,
            chunk_count: chunks,
            page_count: 1,
            paged: true,
            source: String::new(),
        }
    }

    #[test]
    fn counts_documents_and_passages_per_value() {
        let found = facets(&[
            document("soumu", "plan", Some("2026-03"), 10),
            document("soumu", "manual", None, 5),
            document("pref-hyogo", "plan", Some("2024-04-01"), 7),
        ]);
        assert_eq!(
            found.total,
            Count {
                documents: 3,
                passages: 22
            }
        );
        assert_eq!(
            found.owners["soumu"],
            Count {
                documents: 2,
                passages: 15
            }
        );
        assert_eq!(found.kinds["plan"].passages, 17);
        assert_eq!(found.years[&Some("2024".to_owned())].documents, 1);
        assert_eq!(found.years[&None].passages, 5);
        assert_eq!(facets(&[]), Facets::default());
    }
}
