//! Mesh simulation benchmark: see README.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use weft_mesh::mesh::{Fanout, MeshConfig};
use weft_mesh::sim::{node_config, random_mesh_links, Sim};

/// The system allocator, counting live bytes and allocation calls.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            let live = LIVE.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(live, Relaxed);
            ALLOCS.fetch_add(1, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            if new >= l.size() {
                let live = LIVE.fetch_add(new - l.size(), Relaxed) + (new - l.size());
                PEAK.fetch_max(live, Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Relaxed);
            }
            ALLOCS.fetch_add(1, Relaxed);
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Args {
    peers: usize,
    degree: usize,
    seed: u64,
    json: Option<String>,
    baseline: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        peers: 1000,
        degree: 10,
        seed: 7,
        json: None,
        baseline: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--peers" => a.peers = val()?.parse().map_err(|e| format!("--peers: {e}"))?,
            "--degree" => a.degree = val()?.parse().map_err(|e| format!("--degree: {e}"))?,
            "--seed" => a.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--json" => a.json = Some(val()?),
            "--no-baseline" => a.baseline = false,
            "-h" | "--help" => {
                return Err(
                    "usage: weft-bench-mesh [--peers N] [--degree K] [--seed S] \
                            [--json PATH] [--no-baseline]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.peers < 4 {
        return Err("--peers must be at least 4".into());
    }
    Ok(a)
}

/// One phase's figures.
#[derive(Debug, Clone)]
struct Phase {
    name: &'static str,
    converged_s: Option<f64>,
    messages_total: u64,
    bytes_total: u64,
    msgs_per_peer_mean: f64,
    msgs_per_peer_max: u64,
    bytes_per_peer_mean: f64,
    bytes_per_peer_max: u64,
    heap_per_peer: f64,
    allocs: usize,
    wall_s: f64,
}

fn run_phase(sim: &mut Sim, name: &'static str, change: impl FnOnce(&mut Sim)) -> Phase {
    let before: Vec<(u64, u64)> = sim
        .nodes
        .iter()
        .map(|n| (n.stats().messages_sent, n.stats().bytes_sent))
        .collect();
    let allocs0 = ALLOCS.load(Relaxed);
    let t = Instant::now();
    change(sim);
    let r = sim.run_until_converged(Duration::from_secs(600));
    let wall = t.elapsed().as_secs_f64();
    let n = sim.nodes.len();
    let per: Vec<(u64, u64)> = sim
        .nodes
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (m0, b0) = before.get(i).copied().unwrap_or((0, 0));
            (m.stats().messages_sent - m0, m.stats().bytes_sent - b0)
        })
        .collect();
    let sum_m: u64 = per.iter().map(|p| p.0).sum();
    let sum_b: u64 = per.iter().map(|p| p.1).sum();
    Phase {
        name,
        converged_s: r.converged_after.map(|d| d.as_secs_f64()),
        messages_total: r.messages,
        bytes_total: r.bytes,
        msgs_per_peer_mean: sum_m as f64 / n as f64,
        msgs_per_peer_max: per.iter().map(|p| p.0).max().unwrap_or(0),
        bytes_per_peer_mean: sum_b as f64 / n as f64,
        bytes_per_peer_max: per.iter().map(|p| p.1).max().unwrap_or(0),
        heap_per_peer: LIVE.load(Relaxed) as f64 / n as f64,
        allocs: ALLOCS.load(Relaxed) - allocs0,
        wall_s: wall,
    }
}

/// Deterministic picks for the new peer's links.
fn pick(seed: u64, n: usize, k: usize) -> Vec<usize> {
    let mut s = seed ^ 0x5851_f42d_4c95_7f2d;
    let mut out = Vec::new();
    while out.len() < k.min(n) {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let v = ((s >> 33) as usize) % n;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn run(args: &Args, fanout: Fanout) -> Vec<Phase> {
    let (n, seed) = (args.peers, args.seed);
    let config = move |i: usize| -> MeshConfig {
        let mut c = node_config(i, seed);
        c.timings.fanout = fanout;
        c
    };
    let mut sim = Sim::with_configs(n, Duration::from_millis(2), config);
    let links = random_mesh_links(n, args.degree, seed);
    let mut phases = Vec::new();
    phases.push(run_phase(&mut sim, "join", |sim| {
        for &(a, b) in &links {
            sim.connect(a, b);
        }
    }));
    let half = n / 2;
    let cut: Vec<(usize, usize)> = sim
        .links()
        .into_iter()
        .filter(|&(a, b)| (a < half) != (b < half))
        .collect();
    phases.push(run_phase(&mut sim, "partition", |sim| {
        for &(a, b) in &cut {
            sim.disconnect(a, b);
        }
    }));
    phases.push(run_phase(&mut sim, "heal", |sim| {
        for &(a, b) in &cut {
            sim.connect(a, b);
        }
    }));
    let targets = pick(seed, n, args.degree.clamp(1, 3));
    phases.push(run_phase(&mut sim, "new-peer", |sim| {
        let new = sim.add_node(config);
        for &t in &targets {
            sim.connect(new, t);
        }
    }));
    phases
}

/// The columns every phase row has, for weft and for the baseline alike.
fn phase_columns(p: &Phase) -> String {
    format!(
        "{:<10} {:>9} {:>10.1} {:>9} {:>11} {:>11} {:>10} {:>7.1}s",
        p.name,
        p.converged_s
            .map_or("NO".to_string(), |s| format!("{s:.3} s")),
        p.msgs_per_peer_mean,
        p.msgs_per_peer_max,
        fmt_bytes(p.bytes_per_peer_mean),
        fmt_bytes(p.bytes_per_peer_max as f64),
        fmt_bytes(p.heap_per_peer),
        p.wall_s,
    )
}

fn fmt_bytes(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}

fn json_phase(p: &Phase) -> String {
    format!(
        "{{\"phase\":\"{}\",\"converged_s\":{},\"messages_total\":{},\"bytes_total\":{},\
         \"msgs_per_peer_mean\":{:.2},\"msgs_per_peer_max\":{},\"bytes_per_peer_mean\":{:.0},\
         \"bytes_per_peer_max\":{},\"heap_bytes_per_peer\":{:.0},\"allocations\":{},\"wall_s\":{:.3}}}",
        p.name,
        p.converged_s.map_or("null".to_string(), |s| format!("{s:.3}")),
        p.messages_total,
        p.bytes_total,
        p.msgs_per_peer_mean,
        p.msgs_per_peer_max,
        p.bytes_per_peer_mean,
        p.bytes_per_peer_max,
        p.heap_per_peer,
        p.allocs,
        p.wall_s
    )
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let weft = run(&args, Fanout::Random);
    let weft_wall = started.elapsed().as_secs_f64();
    let t = Instant::now();
    let flood = if args.baseline {
        Some(run(&args, Fanout::All))
    } else {
        None
    };
    let flood_wall = t.elapsed().as_secs_f64();

    let mut table = String::new();
    let _ = writeln!(
        table,
        "weft mesh simulation: {} peers, degree ~{}, seed {}, link latency 2 ms",
        args.peers, args.degree, args.seed
    );
    let _ = writeln!(
        table,
        "{:<10} {:>9} {:>10} {:>9} {:>11} {:>11} {:>10} {:>8} {:>12} {:>12}",
        "phase",
        "converge",
        "msgs/peer",
        "max",
        "bytes/peer",
        "max",
        "heap/peer",
        "wall",
        "msgs vs all",
        "bytes vs all"
    );
    for (i, p) in weft.iter().enumerate() {
        let f = flood.as_ref().and_then(|f| f.get(i));
        let ratio = |a: f64, b: Option<f64>| {
            b.filter(|b| *b > 0.0)
                .map_or("-".to_string(), |b| format!("{:.2}", a / b))
        };
        let _ = writeln!(
            table,
            "{} {:>12} {:>12}",
            phase_columns(p),
            ratio(p.msgs_per_peer_mean, f.map(|f| f.msgs_per_peer_mean)),
            ratio(p.bytes_per_peer_mean, f.map(|f| f.bytes_per_peer_mean)),
        );
    }
    if let Some(flood) = &flood {
        let _ = writeln!(
            table,
            "baseline: flooding (Fanout::All, every neighbour but the sender)"
        );
        for p in flood {
            let _ = writeln!(table, "{}", phase_columns(p));
        }
    }
    let _ = writeln!(
        table,
        "wall: weft {weft_wall:.1} s, baseline {flood_wall:.1} s; peak heap {}",
        fmt_bytes(PEAK.load(Relaxed) as f64)
    );
    print!("{table}");

    let list = |ps: &[Phase]| ps.iter().map(json_phase).collect::<Vec<_>>().join(",");
    let json = format!(
        "{{\"peers\":{},\"degree\":{},\"seed\":{},\"latency_ms\":2,\"weft\":[{}],\"flooding\":[{}],\
         \"wall_s\":{{\"weft\":{:.3},\"flooding\":{:.3}}},\"peak_heap_bytes\":{}}}",
        args.peers,
        args.degree,
        args.seed,
        list(&weft),
        flood.as_deref().map_or(String::new(), list),
        weft_wall,
        flood_wall,
        PEAK.load(Relaxed)
    );
    match &args.json {
        Some(path) => {
            if let Err(e) = std::fs::write(path, json + "\n") {
                eprintln!("writing {path}: {e}");
                std::process::exit(1);
            }
        }
        None => println!("{json}"),
    }
    if weft.iter().any(|p| p.converged_s.is_none()) {
        eprintln!("weft did not converge in some phase");
        std::process::exit(1);
    }
}
