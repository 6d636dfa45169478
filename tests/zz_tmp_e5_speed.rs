use hikitsugi::setup::{default_cache_dir, ensure_model, load_embedder};
use std::time::Instant;
#[test]
fn speed() {
    let cache = default_cache_dir().unwrap();
    let stamp = cache.join("models/multilingual-e5-small-q4/.hikitsugi-verified.json");
    let _ = std::fs::remove_file(&stamp);
    let t = Instant::now();
    let paths = ensure_model(&cache, &|l| eprintln!("{l}")).unwrap();
    eprintln!("ensure_model without stamp (hashing): {:.0?}", t.elapsed());
    let t = Instant::now();
    ensure_model(&cache, &|l| eprintln!("{l}")).unwrap();
    eprintln!("ensure_model with stamp: {:.2?}", t.elapsed());
    let t = Instant::now();
    let mut e = load_embedder(&paths).unwrap();
    eprintln!("load: {:.2?}", t.elapsed());
    let mut texts = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir("/work/shared/corpus/text")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let s: Vec<char> = std::fs::read_to_string(f).unwrap().chars().collect();
        for c in s.chunks(300) {
            texts.push(format!("passage: {}", c.iter().collect::<String>()));
        }
    }
    texts.truncate(96);
    for bs in [1usize, 8, 32] {
        let t = Instant::now();
        let v = e.embed(&texts, Some(bs)).unwrap();
        let dt = t.elapsed().as_secs_f64();
        eprintln!(
            "batch {bs}: {} passages in {dt:.1}s = {:.1}/s",
            v.len(),
            v.len() as f64 / dt
        );
    }
    let t = Instant::now();
    for _ in 0..20 {
        e.embed(["query: 山梨県の伴走支援の体制"], None).unwrap();
    }
    eprintln!("query: {:.1?} each", t.elapsed() / 20);
}
