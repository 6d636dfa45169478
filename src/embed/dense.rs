//! Dense sentence vectors (multilingual-e5), off the async runtime.
//!
//! Queries and passages have separate model instances, so embedding a long upload or a corpus
//! never makes a search wait for the model: `model.workers` instances serve queries side by
//! side, one more (loaded on first use, on a thread of lower CPU priority: `model.passage_nice`,
//! unloaded when idle) serves passages; all of them share one tokenizer (see
//! [`super::session`]). At most `model.max_queue` embeddings wait for an instance; beyond that
//! a call fails at once with [`EmbedError::Busy`]. An instance whose call panicked is dropped
//! and rebuilt on its next use.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::model::{LoadError, ModelPaths};
use super::session::{ModelInstance, SharedModel};

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

/// A model that embeds texts (a [`ModelInstance`], or a test double).
pub trait Embed: Send {
    fn embed(&mut self, texts: Vec<String>, batch_size: usize) -> Result<Vec<Vec<f32>>, String>;
}

type Loader<M> = Box<dyn Fn() -> Result<M, EmbedError> + Send + Sync>;

/// Instances of a model, each `None` until (re)built by `load`. A call takes whichever instance
/// is free first (the free ones wait in a channel), so `n` instances serve `n` calls at once.
pub struct Pool<M> {
    free: crossbeam_channel::Receiver<Option<M>>,
    returned: crossbeam_channel::Sender<Option<M>>,
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
        let instances = instances.max(1);
        let (returned, free) = crossbeam_channel::bounded(instances);
        for _ in 0..instances {
            // The channel holds exactly the instances, so this never blocks or fails.
            let _ = returned.send(None);
        }
        Self {
            free,
            returned,
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
        drop(instance);
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
        instance: &mut Lease<'_, M>,
        texts: Vec<String>,
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let slot = instance.slot();
        if slot.is_none() {
            *slot = Some((self.load)()?);
        }
        let Some(model) = slot.as_mut() else {
            return Err(EmbedError::Inference("no model instance".to_owned()));
        };
        match catch_unwind(AssertUnwindSafe(|| model.embed(texts, batch_size))) {
            Ok(result) => result.map_err(EmbedError::Inference),
            Err(_) => {
                tracing::error!(
                    "the embedding model panicked; its instance is rebuilt on next use"
                );
                *slot = None;
                Err(EmbedError::Inference(
                    "the embedding model panicked; it is being reloaded".to_owned(),
                ))
            }
        }
    }

    /// The first instance to be free; [`EmbedError::Busy`] when too many calls wait already.
    fn instance(&self) -> Result<Lease<'_, M>, EmbedError> {
        let slot = match self.free.try_recv() {
            Ok(slot) => slot,
            Err(_) => {
                let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
                let _queued = Queued(&self.waiting);
                if waiting >= self.max_waiting {
                    return Err(EmbedError::Busy(waiting));
                }
                // The pool holds a sender, so the channel never disconnects while it lives.
                self.free
                    .recv()
                    .map_err(|_| EmbedError::Inference("the embedding pool is closed".to_owned()))?
            }
        };
        Ok(self.lease(slot))
    }

    /// Builds every instance that is not built yet, in parallel (each on a thread of its own).
    pub fn preload(&self) -> Result<(), EmbedError> {
        let mut leases: Vec<Lease<'_, M>> =
            self.free.try_iter().map(|slot| self.lease(slot)).collect();
        std::thread::scope(|scope| {
            let loads: Vec<_> = leases
                .iter_mut()
                .filter(|lease| lease.slot.as_ref().is_some_and(Option::is_none))
                .map(|lease| {
                    scope.spawn(move || {
                        *lease.slot() = Some((self.load)()?);
                        Ok::<_, EmbedError>(())
                    })
                })
                .collect();
            loads.into_iter().try_for_each(|load| {
                load.join().unwrap_or_else(|_| {
                    Err(EmbedError::Inference(
                        "loading the embedding model panicked".to_owned(),
                    ))
                })
            })
        })
    }

    fn lease(&self, slot: Option<M>) -> Lease<'_, M> {
        Lease {
            slot: Some(slot),
            returned: &self.returned,
        }
    }

    /// Drops every model instance that no call is using (they are rebuilt on next use), to give
    /// their memory back while the pool is idle.
    pub fn unload_idle(&self) {
        let idle: Vec<Option<M>> = self.free.try_iter().collect();
        for _ in idle {
            let _ = self.returned.send(None);
        }
    }

    /// Why the last call failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// An instance taken from the pool, given back when dropped (also when its call panicked).
struct Lease<'a, M> {
    slot: Option<Option<M>>,
    returned: &'a crossbeam_channel::Sender<Option<M>>,
}

impl<M> Lease<'_, M> {
    fn slot(&mut self) -> &mut Option<M> {
        self.slot.get_or_insert(None)
    }
}

impl<M> Drop for Lease<'_, M> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let _ = self.returned.send(slot);
        }
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
    /// Serves `pool` on a new thread at `nice`; its idle instances are dropped after `unload_after`
    /// without work (`None`: kept), so a served corpus does not keep the document model's memory.
    pub fn spawn<M: Embed + 'static>(
        pool: Pool<M>,
        nice: i32,
        max_waiting: usize,
        unload_after: Option<Duration>,
    ) -> Result<Self, EmbedError> {
        let (jobs, queue) =
            crossbeam_channel::bounded::<(Vec<String>, usize, Reply)>(max_waiting.max(1));
        std::thread::Builder::new()
            .name("passage-embedding".to_owned())
            .spawn(move || {
                lower_priority(nice);
                let mut loaded = false;
                loop {
                    let job = match unload_after.filter(|_| loaded) {
                        Some(idle) => queue.recv_timeout(idle).map_err(|error| error.is_timeout()),
                        None => queue.recv().map_err(|_| false),
                    };
                    match job {
                        Ok((texts, batch_size, reply)) => {
                            loaded = true;
                            // The caller may have given up (a timed-out upload); nobody is told then.
                            let _ = reply.send(pool.embed(texts, batch_size));
                        }
                        Err(true) => {
                            pool.unload_idle();
                            release_freed_memory();
                            loaded = false;
                            tracing::debug!("the idle document embedding model was unloaded");
                        }
                        Err(false) => break,
                    }
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

/// Embeds `texts` shortest first, so that each batch holds texts of similar length and pads
/// little, and returns the vectors in the order of `texts`.
fn embed_by_length(
    texts: Vec<String>,
    embed: impl FnOnce(Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError>,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&index| texts[index].len());
    let mut texts: Vec<Option<String>> = texts.into_iter().map(Some).collect();
    let sorted = order
        .iter()
        .filter_map(|&index| texts[index].take())
        .collect();
    let vectors = embed(sorted)?;
    if vectors.len() != order.len() {
        return Err(EmbedError::Inference(format!(
            "{} vectors for {} texts",
            vectors.len(),
            order.len()
        )));
    }
    let mut in_order = vec![Vec::new(); order.len()];
    for (vector, index) in vectors.into_iter().zip(order) {
        in_order[index] = vector;
    }
    Ok(in_order)
}

/// Gives the memory that freed allocations left in the allocator's arenas back to the system.
/// Loading a model (its tokenizer file, its ONNX graph) goes through tens of megabytes of
/// short-lived values, and embedding a batch through more; without this, the process keeps that
/// memory resident for good.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
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

/// Counts query embeddings answered from the cache (`result="hit"`) or by the model (`"miss"`).
pub const QUERY_CACHE_METRIC: &str = "hikitsugi_query_embedding_cache_total";

/// How the dense encoder runs its model.
#[derive(Debug, Clone)]
pub struct DenseOptions {
    /// Model instances for queries, each serving one query at a time.
    pub query_instances: usize,
    /// ONNX Runtime threads of each query instance (they do not spin while waiting).
    pub query_threads: usize,
    /// Passages embedded per model call.
    pub batch_size: usize,
    /// Calls that may wait for a free instance; beyond that, [`EmbedError::Busy`].
    pub max_queue: usize,
    /// ONNX Runtime threads of the passage instance (`None`: one per core).
    pub passage_threads: Option<usize>,
    /// The nice value of the passage instance's threads.
    pub passage_nice: i32,
    /// How long the passage instance stays loaded without work (`None`: for good).
    pub passage_unload_after: Option<Duration>,
    /// Query vectors kept, by query text (0: none).
    pub query_cache: usize,
}

/// Dense vectors of the configured model, with separate instances for queries and passages.
pub struct DenseEncoder {
    shared: Arc<SharedModel>,
    queries: Pool<ModelInstance>,
    passages: Background,
    cache: Option<quick_cache::sync::Cache<String, Arc<[f32]>>>,
    batch_size: usize,
    dim: usize,
}

impl DenseEncoder {
    /// Loads the query instances (the passage instance is loaded on first use).
    pub fn load(paths: &ModelPaths, options: &DenseOptions) -> Result<Self, EmbedError> {
        let shared = Arc::new(SharedModel::load(paths)?);
        let threads = options.query_threads.max(1);
        let queries = Pool::new(options.query_instances, options.max_queue, {
            let shared = shared.clone();
            // Several query instances share the cores: a thread waiting for work must not spin.
            move || Ok(shared.instance(threads, false)?)
        });
        // Every query instance now, so that the first searches do not wait for a model.
        queries.preload()?;
        release_freed_memory();
        let passage_threads = options.passage_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let mut encoder = Self {
            shared: shared.clone(),
            queries,
            passages: Background::spawn(
                Pool::new(1, options.max_queue, move || {
                    // As fastembed's sessions do; at its lower priority, spinning yields to queries.
                    Ok(shared.instance(passage_threads, true)?)
                }),
                options.passage_nice,
                options.max_queue,
                options.passage_unload_after,
            )?,
            cache: (options.query_cache > 0)
                .then(|| quick_cache::sync::Cache::new(options.query_cache)),
            batch_size: options.batch_size.max(1),
            dim: 0,
        };
        encoder.dim = encoder.embed_query("dimension probe")?.len();
        Ok(encoder)
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn embed_query(&self, query: &str) -> Result<Vec<f32>, EmbedError> {
        let Some(cache) = &self.cache else {
            return self.embed_query_uncached(query);
        };
        if let Some(vector) = cache.get(query) {
            metrics::counter!(QUERY_CACHE_METRIC, "result" => "hit").increment(1);
            return Ok(vector.to_vec());
        }
        metrics::counter!(QUERY_CACHE_METRIC, "result" => "miss").increment(1);
        let vector = self.embed_query_uncached(query)?;
        cache.insert(query.to_owned(), Arc::from(vector.as_slice()));
        Ok(vector)
    }

    fn embed_query_uncached(&self, query: &str) -> Result<Vec<f32>, EmbedError> {
        self.queries
            .embed(vec![format!("{QUERY_PREFIX}{query}")], 1)?
            .pop()
            .ok_or_else(|| EmbedError::Inference("the model returned no vector".to_owned()))
    }

    pub fn embed_passages(&self, passages: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let prefixed: Vec<String> = passages
            .iter()
            .map(|text| format!("{PASSAGE_PREFIX}{text}"))
            .collect();
        embed_by_length(prefixed, |sorted| {
            self.passages.embed(sorted, self.batch_size)
        })
    }

    /// How many tokens of `passage` the model reads (its prefix and special tokens included, at
    /// most [`super::MAX_TOKENS`]).
    pub fn passage_tokens(&self, passage: &str) -> Result<usize, EmbedError> {
        self.shared
            .token_count(&format!("{PASSAGE_PREFIX}{passage}"))
            .map_err(EmbedError::Inference)
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

    /// Blocks each call until the test lets it finish.
    struct Gated {
        started: crossbeam_channel::Sender<()>,
        finish: crossbeam_channel::Receiver<()>,
    }

    impl Embed for Gated {
        fn embed(&mut self, texts: Vec<String>, _: usize) -> Result<Vec<Vec<f32>>, String> {
            let _ = self.started.send(());
            self.finish.recv().map_err(|error| error.to_string())?;
            Ok(texts.iter().map(|_| vec![1.0]).collect())
        }
    }

    #[test]
    fn a_waiting_call_takes_whichever_instance_is_freed_first() {
        let (started, started_calls) = crossbeam_channel::unbounded();
        let finishers: Vec<_> = (0..2)
            .map(|_| crossbeam_channel::bounded::<()>(1))
            .collect();
        let gates = Arc::new(Mutex::new(
            finishers
                .iter()
                .map(|(_, finish)| finish.clone())
                .collect::<Vec<_>>(),
        ));
        let pool = Arc::new(Pool::new(2, 4, move || {
            Ok(Gated {
                started: started.clone(),
                finish: gates.lock().unwrap().remove(0),
            })
        }));
        pool.preload().expect("both instances built");
        let call = |pool: &Arc<Pool<Gated>>| {
            let pool = pool.clone();
            std::thread::spawn(move || pool.embed(vec!["a".to_owned()], 1))
        };
        let timeout = Duration::from_secs(10);
        let first = call(&pool);
        started_calls
            .recv_timeout(timeout)
            .expect("first call running");
        let second = call(&pool);
        started_calls
            .recv_timeout(timeout)
            .expect("second call running beside the first");
        let third = call(&pool);
        assert!(
            started_calls
                .recv_timeout(Duration::from_millis(200))
                .is_err(),
            "third waits"
        );

        // Whichever instance the second call holds, freeing it must let the third call run
        // while the first call still holds the other instance.
        finishers[0].0.send(()).unwrap();
        started_calls
            .recv_timeout(timeout)
            .expect("the third call ran on the freed instance");
        finishers[1].0.send(()).unwrap();
        finishers[0].0.send(()).unwrap();
        for call in [first, second, third] {
            assert_eq!(call.join().unwrap().unwrap(), vec![vec![1.0]]);
        }
    }

    #[test]
    fn an_idle_document_model_is_unloaded_and_rebuilt_when_needed() {
        let builds = Arc::new(AtomicUsize::new(0));
        let counted = builds.clone();
        let pool = Pool::new(1, 4, move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(Flaky {
                panic_next: Arc::new(AtomicBool::new(false)),
            })
        });
        let background =
            Background::spawn(pool, 0, 4, Some(Duration::from_millis(50))).expect("a thread");
        background
            .embed(vec!["ab".to_owned()], 1)
            .expect("embedded");
        background
            .embed(vec!["ab".to_owned()], 1)
            .expect("embedded");
        assert_eq!(builds.load(Ordering::SeqCst), 1, "kept while in use");
        std::thread::sleep(Duration::from_millis(300));
        background
            .embed(vec!["ab".to_owned()], 1)
            .expect("embedded");
        assert_eq!(
            builds.load(Ordering::SeqCst),
            2,
            "unloaded when idle, rebuilt on use"
        );
    }

    #[test]
    fn passages_are_embedded_shortest_first_and_returned_in_their_order() {
        let texts: Vec<String> = ["ccc", "a", "dddd", "bb", "a"].map(str::to_owned).into();
        let vectors = embed_by_length(texts, |sorted| {
            let lengths: Vec<usize> = sorted.iter().map(String::len).collect();
            assert_eq!(lengths, vec![1, 1, 2, 3, 4], "embedded by length");
            Ok(sorted.iter().map(|text| vec![text.len() as f32]).collect())
        })
        .unwrap();
        assert_eq!(
            vectors,
            vec![vec![3.0], vec![1.0], vec![4.0], vec![2.0], vec![1.0]]
        );
        let short = embed_by_length(vec!["ab".to_owned()], |_| Ok(Vec::new()));
        assert!(
            matches!(short, Err(EmbedError::Inference(_))),
            "a missing vector is an error"
        );
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
            Background::spawn(Pool::new(1, 4, || Ok(NiceProbe)), 10, 4, None).expect("a thread");
        let vectors = background
            .embed(vec!["a".to_owned(), "b".to_owned()], 2)
            .expect("embedded");
        assert_eq!(vectors.len(), 2);
        assert!(vectors[0][0] >= 10.0, "nice {}", vectors[0][0]);
        assert_eq!(own(), before, "the caller keeps its priority");
    }
}
