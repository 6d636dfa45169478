//! How a generated answer was checked, sentence by sentence: what an [`Answer`](super::Answer)
//! reports of its verification (the checking itself is the generator's).

/// How one sentence of the model's text was judged.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedSentence {
    /// The sentence without its markers.
    pub text: String,
    pub verdict: Verdict,
    pub action: Action,
    /// The passages (numbered as in the prompt, from 1) that support it and stay cited.
    pub supported_by: Vec<usize>,
    /// The passages the model cited, as in the prompt, valid numbers only.
    pub cited: Vec<usize>,
    /// The citation numbers it carries in the verified answer (renumbered from 1).
    pub citations: Vec<usize>,
    /// The best support among the passages checked (the cited ones, or all for an uncited
    /// sentence), 0–1.
    pub support: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A cited passage supports it.
    Supported,
    /// Uncited, but one passage supports it; that passage is cited.
    Attributed,
    /// No passage supports it (cited or not).
    Unsupported,
    /// The model said the passages do not answer.
    NotInDocuments,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Kept,
    Dropped,
    Marked,
}

/// The verification of one generated answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    pub sentences: Vec<CheckedSentence>,
    /// Marker numbers that pointed to no passage, as the model wrote them.
    pub invalid_markers: Vec<usize>,
    pub min_support: f32,
}

impl Verification {
    pub fn count(&self, action: Action) -> usize {
        self.sentences
            .iter()
            .filter(|sentence| sentence.action == action)
            .count()
    }

    /// Sentences that are claims (not the model's "not in the documents").
    pub fn claims(&self) -> usize {
        self.sentences
            .iter()
            .filter(|sentence| sentence.verdict != Verdict::NotInDocuments)
            .count()
    }

    /// Claims that no passage supports (dropped or marked).
    pub fn unsupported(&self) -> usize {
        self.sentences
            .iter()
            .filter(|sentence| sentence.verdict == Verdict::Unsupported)
            .count()
    }
}
