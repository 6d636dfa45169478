//! Dense sentence vectors (multilingual-e5) through fastembed, off the async runtime.
//!
//! Queries and passages have separate model instances, so embedding a long upload or a corpus
//! never makes a search wait for the model: `model.workers` instances serve queries, one more
//! (loaded on first use, on a thread of lower CPU priority: `model.passage_nice`) serves
//! passages. At most `model.max_queue` embeddings wait for an
//! instance; beyond that a call fails at once with [`EmbedError::Busy`]. An instance whose call
//! panicked (or whose lock was poisoned) is dropped and rebuilt on its next use.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use fastembed::TextEmbedding;

use super::model::{LoadError, ModelPaths, load_embedder};

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("embedding failed: {0}")]
    Inference(String),
    #[error("every embedding worker is busy and {0} embeddings are already waiting")]
    Busy(usize),
}

const QUERY_PREFIX: &str = "query: ";
const PASSAGE_PREFIX: &str = "passage: ";

/// A model that embeds texts (fastembed's, or a test double).
pub trait Embed: Send {
    fn embed(&mut self, texts: Vec<String>, batch_size: usize) -> Result<Vec<Vec<f32>>, String>;
}

impl Embed for TextEmbedding {
    fn embed(&mut self, texts: Vec<String>, batch_size: usize) -> Result<Vec<Vec<f32>>, String> {
        TextEmbedding::embed(self, texts, Some(batch_size)).map_err(|error| error.to_string())
    }
}

type Loader<M> = Box<dyn Fn() -> Result<M, EmbedError> + Send + Sync>;

/// Instances of a model behind locks, each `None` until (re)built by `load`.
pub struct Pool<M> {
    instances: Vec<Mutex<Option<M>>>,
    load: Loader<M>,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// Why the last call failed, until a call succeeds.
    failure: Mutex<Option<String>>,
}

impl<M: Embed> Pool<M> {
    pub fn new(
        instances: usize,
        max_waiting: usize,
        load: impl Fn() -> Result<M, EmbedError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            instances: (0..instances.max(1)).map(|_| Mutex::new(None)).collect(),
            load: Box::new(load),
            waiting: AtomicUsize::new(0),
            max_waiting,
            failure: Mutex::new(None),
        }
    }

    /// Embeds `texts` with a free instance (waiting for one when none is free).
    pub fn embed(
        &self,
        texts: Vec<String>,
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let count = texts.len();
        let mut instance = self.instance()?;
        let result = self.embed_with(&mut instance, texts, batch_size);
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        *failure = result.as_ref().err().map(ToString::to_string);
        drop(failure);
        let vectors = result?;
        if vectors.len() != count {
            return Err(EmbedError::Inference(format!(
                "{} vectors for {count} texts",
                vectors.len()
            )));
        }
        Ok(vectors)
    }

    fn embed_with(
        &self,
        instance: &mut MutexGuard<'_, Option<M>>,
        texts: Vec<String>,
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if instance.is_none() {
            **instance = Some((self.load)()?);
        }
        let Some(model) = instance.as_mut() else {
            return Err(EmbedError::Inference("no model instance".to_owned()));
        };
        match catch_unwind(AssertUnwindSafe(|| model.embed(texts, batch_size))) {
            Ok(result) => result.map_err(EmbedError::Inference),
            Err(_) => {
                tracing::error!(
                    "the embedding model panicked; its instance is rebuilt on next use"
                );
                **instance = None;
                Err(EmbedError::Inference(
                    "the embedding model panicked; it is being reloaded".to_owned(),
                ))
            }
        }
    }

    /// A free instance, else the first one once free; [`EmbedError::Busy`] when too many wait.
    fn instance(&self) -> Result<MutexGuard<'_, Option<M>>, EmbedError> {
        for instance in &self.instances {
            match instance.try_lock() {
                Ok(guard) => return Ok(guard),
                Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                    return Ok(Self::recovered(instance, poisoned.into_inner()));
                }
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _queued = Queued(&self.waiting);
        if waiting >= self.max_waiting {
            return Err(EmbedError::Busy(waiting));
        }
        let instance = &self.instances[0];
        Ok(match instance.lock() {
            Ok(guard) => guard,
            Err(poisoned) => Self::recovered(instance, poisoned.into_inner()),
        })
    }

    /// A poisoned instance's model may be in any state: drop it so that it is rebuilt.
    fn recovered<'a>(
        instance: &'a Mutex<Option<M>>,
        mut guard: MutexGuard<'a, Option<M>>,
    ) -> MutexGuard<'a, Option<M>> {
        tracing::warn!("an embedding instance was poisoned by a panic; rebuilding it");
        *guard = None;
        instance.clear_poison();
        guard
    }

    /// Why the last call failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Counts one waiting call while it lives.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

type Reply = crossbeam_channel::Sender<Result<Vec<Vec<f32>>, EmbedError>>;

/// A pool served by a thread of its own at a lower CPU priority (a higher `nice` value), so that
/// embedding a corpus or an upload takes only the CPU that queries leave. The model is loaded on
/// that thread, and ONNX Runtime's worker threads, created with the model, inherit its priority
/// (Linux threads inherit their creator's nice value). At most `max_waiting` calls wait; more
/// fail at once with [`EmbedError::Busy`].
pub struct Background {
    jobs: crossbeam_channel::Sender<(Vec<String>, usize, Reply)>,
}

impl Background {
    pub fn spawn<M: Embed + 'static>(
        pool: Pool<M>,
        nice: i32,
        max_waiting: usize,
    ) -> Result<Self, EmbedError> {
        let (jobs, queue) =
            crossbeam_channel::bounded::<(Vec<String>, usize, Reply)>(max_waiting.max(1));
        std::thread::Builder::new()
            .name("passage-embedding".to_owned())
            .spawn(move || {
                lower_priority(nice);
                for (texts, batch_size, reply) in queue {
                    // The caller may have given up (a timed-out upload); nobody is told then.
                    let _ = reply.send(pool.embed(texts, batch_size));
                }
            })
            .map_err(|error| {
                EmbedError::Inference(format!("no thread for document embedding: {error}"))
            })?;
        Ok(Self { jobs })
    }

    pub fn embed(
        &self,
        texts: Vec<String>,
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let stopped =
            || EmbedError::Inference("the document embedding thread has stopped".to_owned());
        let (reply, result) = crossbeam_channel::bounded(1);
        match self.jobs.try_send((texts, batch_size, reply)) {
            Ok(()) => result.recv().unwrap_or_else(|_| Err(stopped())),
            Err(crossbeam_channel::TrySendError::Full(_)) => Err(EmbedError::Busy(self.jobs.len())),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Err(stopped()),
        }
    }
}

/// Raises the calling thread's nice value to `nice` (on Linux, `setpriority` with `PRIO_PROCESS`
/// and id 0 applies to the calling thread only). Raising it needs no privilege; a failure leaves
/// the priority as it was, which is logged.
fn lower_priority(nice: i32) {
    if nice <= 0 {
        return;
    }
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    let status = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice.min(19)) };
    if status != 0 {
        tracing::warn!(nice, error = %std::io::Error::last_os_error(), "document embedding keeps the normal CPU priority");
    }
}

/// Dense vectors of the configured model, with separate instances for queries and passages.
pub struct DenseEncoder {
    queries: Pool<TextEmbedding>,
    passages: Background,
    batch_size: usize,
    dim: usize,
}

impl DenseEncoder {
    /// Loads `workers` query instances (the passage instance, with at most `passage_threads`
    /// threads at nice value `passage_nice`, is loaded on first use).
    pub fn load(
        paths: &ModelPaths,
        workers: usize,
        batch_size: usize,
        max_queue: usize,
        passage_threads: Option<usize>,
        passage_nice: i32,
    ) -> Result<Self, EmbedError> {
        let loader = |paths: ModelPaths, threads| move || Ok(load_embedder(&paths, threads)?);
        let mut encoder = Self {
            queries: Pool::new(workers, max_queue, loader(paths.clone(), None)),
            passages: Background::spawn(
                Pool::new(1, max_queue, loader(paths.clone(), passage_threads)),
                passage_nice,
                max_queue,
            )?,
            batch_size: batch_size.max(1),
            dim: 0,
        };
        encoder.dim = encoder.embed_query("dimension probe")?.len();
        Ok(encoder)
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn embed_query(&self, query: &str) -> Result<Vec<f32>, EmbedError> {
        self.queries
            .embed(vec![format!("{QUERY_PREFIX}{query}")], 1)?
            .pop()
            .ok_or_else(|| EmbedError::Inference("the model returned no vector".to_owned()))
    }

    pub fn embed_passages(&self, passages: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let prefixed = passages
            .iter()
            .map(|text| format!("{PASSAGE_PREFIX}{text}"))
            .collect();
        self.passages.embed(prefixed, self.batch_size)
    }

    /// Why the last query embedding failed, if it did (for readiness probes).
    pub fn failure(&self) -> Option<String> {
        self.queries.failure()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// Panics on its next call once `panic_next` is set.
    struct Flaky {
        panic_next: Arc<AtomicBool>,
    }

    impl Embed for Flaky {
        fn embed(&mut self, texts: Vec<String>, _: usize) -> Result<Vec<Vec<f32>>, String> {
            if self.panic_next.swap(false, Ordering::SeqCst) {
                panic!("simulated inference panic");
            }
            Ok(texts.iter().map(|text| vec![text.len() as f32]).collect())
        }
    }

    fn flaky_pool(panic_next: &Arc<AtomicBool>, builds: &Arc<AtomicUsize>) -> Pool<Flaky> {
        let (panic_next, builds) = (panic_next.clone(), builds.clone());
        Pool::new(1, 4, move || {
            builds.fetch_add(1, Ordering::SeqCst);
            Ok(Flaky {
                panic_next: panic_next.clone(),
            })
        })
    }

    #[test]
    fn a_panicking_model_is_rebuilt_and_the_pool_keeps_working() {
        let panic_next = Arc::new(AtomicBool::new(false));
        let builds = Arc::new(AtomicUsize::new(0));
        let pool = flaky_pool(&panic_next, &builds);
        assert_eq!(pool.embed(vec!["ab".into()], 1).unwrap(), vec![vec![2.0]]);
        assert_eq!(builds.load(Ordering::SeqCst), 1);

        panic_next.store(true, Ordering::SeqCst);
        assert!(matches!(
            pool.embed(vec!["ab".into()], 1),
            Err(EmbedError::Inference(_))
        ));
        assert!(pool.failure().is_some(), "the failure is reported");

        assert_eq!(pool.embed(vec!["abc".into()], 1).unwrap(), vec![vec![3.0]]);
        assert_eq!(builds.load(Ordering::SeqCst), 2, "rebuilt once");
        assert!(pool.failure().is_none(), "recovered");
    }

    #[test]
    fn a_poisoned_lock_is_recovered_with_a_fresh_model() {
        let panic_next = Arc::new(AtomicBool::new(false));
        let builds = Arc::new(AtomicUsize::new(0));
        let pool = Arc::new(flaky_pool(&panic_next, &builds));
        pool.embed(vec!["a".into()], 1).unwrap();
        let poisoner = pool.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.instances[0].lock();
            panic!("poison the instance lock");
        })
        .join();
        assert!(pool.instances[0].is_poisoned());
        assert_eq!(pool.embed(vec!["abcd".into()], 1).unwrap(), vec![vec![4.0]]);
        assert_eq!(builds.load(Ordering::SeqCst), 2);
        assert!(!pool.instances[0].is_poisoned());
    }

    #[test]
    fn too_many_waiting_calls_are_refused_at_once() {
        let pool = Arc::new(Pool::new(1, 0, || {
            Ok(Flaky {
                panic_next: Arc::new(AtomicBool::new(false)),
            })
        }));
        let _held = pool.instances[0].lock().unwrap();
        assert!(matches!(
            pool.embed(vec!["a".into()], 1),
            Err(EmbedError::Busy(0))
        ));
    }

    /// Reports the nice value of the thread it runs on.
    struct NiceProbe;

    impl Embed for NiceProbe {
        fn embed(&mut self, texts: Vec<String>, _: usize) -> Result<Vec<Vec<f32>>, String> {
            // SAFETY: getpriority takes plain integers and touches no memory of ours.
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            Ok(texts.iter().map(|_| vec![nice as f32]).collect())
        }
    }

    #[test]
    fn documents_are_embedded_on_a_thread_that_yields_the_cpu() {
        // SAFETY: as above.
        let own = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let before = own();
        let background =
            Background::spawn(Pool::new(1, 4, || Ok(NiceProbe)), 10, 4).expect("a thread");
        let vectors = background
            .embed(vec!["a".to_owned(), "b".to_owned()], 2)
            .expect("embedded");
        assert_eq!(vectors.len(), 2);
        assert!(vectors[0][0] >= 10.0, "nice {}", vectors[0][0]);
        assert_eq!(own(), before, "the caller keeps its priority");
    }
}
