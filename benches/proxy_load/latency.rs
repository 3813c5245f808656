//! Open-loop fixed-rate load: a scheduler releases requests at `rate` per
//! second; a fixed set of connections takes them in turn. A request that waits
//! for a free connection has that wait in its latency, as a real client at this
//! rate would see it. Latency starts when the scheduler releases the request,
//! not at its nominal slot: tokio's timer wakes up to ~1 ms late, and that
//! lateness is the load generator's, not the proxy's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, mpsc};

use crate::Target;
use crate::client::{Connection, Error};

/// A request slower than this counts as an error (and its connection is replaced).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Requests per second.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value = "10", value_parser = crate::seconds)]
    duration: Duration,
    /// Seconds at the same rate before measuring (pools, caches, TCP windows).
    #[arg(long, default_value = "2", value_parser = crate::seconds)]
    warmup: Duration,
    /// Keep-alive connections; enough that none is the bottleneck at `rate`.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Also write each measured request as `<release_us> <latency_us>` (the
    /// release counted from the start of measuring) to this file, to see when
    /// the slow ones happened.
    #[arg(long)]
    trace: Option<std::path::PathBuf>,
}

#[derive(Default)]
struct Tally {
    /// Microseconds from release to the last body byte, measured only.
    latencies_us: Vec<u64>,
    /// Microseconds from the start of measuring to each release, in the
    /// order of `latencies_us`.
    released_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

pub async fn run(args: Args) -> Result<String, String> {
    if args.rate == 0 {
        return Err("--rate must be positive".into());
    }
    let host = args.target.host();
    let total = args.warmup + args.duration;
    let count = (total.as_secs_f64() * f64::from(args.rate)).round() as u64;
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + args.warmup;

    let (tx, rx) = mpsc::channel::<Instant>(count.min(1 << 20) as usize);
    let rx = Arc::new(Mutex::new(rx));
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let mut workers = Vec::new();
    for _ in 0..args.connections.max(1) {
        let conn = Connection::open(&args.target)
            .await
            .map_err(|e| format!("{}: {e}", args.target.addr))?;
        workers.push(tokio::spawn(worker(
            conn,
            args.target.clone(),
            host.clone(),
            rx.clone(),
            tally.clone(),
            measure_from,
        )));
    }
    for i in 0..count {
        let due = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        if tx.send(Instant::now()).await.is_err() {
            break;
        }
    }
    drop(tx);
    for w in workers {
        w.await.map_err(|e| format!("worker: {e}"))?;
    }
    let ended = Instant::now();
    let mut tally = std::mem::take(&mut *tally.lock().map_err(|e| e.to_string())?);
    if let Some(path) = &args.trace {
        write_trace(path, &tally).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    tally.latencies_us.sort_unstable();
    let measured = tally.latencies_us.len() as u64;
    let elapsed = ended.duration_since(measure_from).as_secs_f64();
    let p = |q: f64| percentile(&tally.latencies_us, q);
    Ok(format!(
        "requests={measured} errors={} achieved_rps={:.0} p50_us={} p90_us={} p99_us={} max_us={} first_error={:?}",
        tally.errors,
        measured as f64 / elapsed.max(f64::EPSILON),
        p(0.50),
        p(0.90),
        p(0.99),
        tally.latencies_us.last().copied().unwrap_or(0),
        tally.first_error.unwrap_or_default(),
    ))
}

async fn worker(
    mut conn: Connection,
    target: Target,
    host: String,
    jobs: Arc<Mutex<mpsc::Receiver<Instant>>>,
    tally: Arc<std::sync::Mutex<Tally>>,
    measure_from: Instant,
) {
    loop {
        let Some(released) = jobs.lock().await.recv().await else {
            return;
        };
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, conn.get(&target, &host)).await;
        let result = match answer.unwrap_or(Err(Error::Timeout)) {
            Ok(()) => Ok(()),
            // One retry on a fresh connection: a peer may close an idle
            // keep-alive connection; the failure still counts.
            Err(e) => {
                if let Ok(fresh) = Connection::open(&target).await {
                    conn = fresh;
                }
                Err(e)
            }
        };
        let done = Instant::now();
        let Ok(mut t) = tally.lock() else { return };
        match result {
            Ok(()) if released >= measure_from => {
                t.latencies_us
                    .push(done.duration_since(released).as_micros() as u64);
                t.released_us
                    .push(released.duration_since(measure_from).as_micros() as u64);
            }
            Ok(()) => {}
            Err(e) => {
                t.errors += 1;
                t.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

fn write_trace(path: &std::path::Path, tally: &Tally) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (released, latency) in tally.released_us.iter().zip(&tally.latencies_us) {
        writeln!(out, "{released} {latency}")?;
    }
    out.flush()
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
