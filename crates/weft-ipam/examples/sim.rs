//! The IPAM simulation at full size:
//! `cargo run --release -p weft-ipam --example sim -- --peers 1000 [--seeds N] [--seed S]`.
//!
//! Phases: N peers start with a ring seeded for the first `--seeds` of them; every peer
//! allocates one address (most must ask another peer for space); 5% of the peers die and are
//! reclaimed after `dead_after` (60 s); the network splits in two for 30 s while both halves
//! allocate, then heals; a new peer joins and allocates. Prints allocations, duplicates (the
//! reply check on every answer and the overlap scan of every live peer's space), gossip bytes
//! per peer, approximate memory per peer and the simulated time until the new peer has an
//! address. Exit 1 if any duplicate was found.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use weft_ipam::sim::{Sim, SimConfig};
use weft_ipam::Reply;

fn arg(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .ok_or_else(|| format!("{name} needs a number"))?
            .parse()
            .map_err(|_| format!("{name} needs a number")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (|| -> Result<(usize, usize, u64), String> {
        let peers = arg(&args, "--peers", 1000)? as usize;
        let seeds = arg(&args, "--seeds", 16)? as usize;
        let seed = arg(&args, "--seed", 1)?;
        if peers < 4 || seeds == 0 || seeds > peers {
            return Err("need --peers >= 4 and 1 <= --seeds <= --peers".into());
        }
        Ok((peers, seeds, seed))
    })();
    let (peers, seeds, seed) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sim: {e}");
            return ExitCode::from(2);
        }
    };
    let wall = Instant::now();
    let mut cfg = SimConfig::new(peers, seed);
    cfg.seeds = seeds;
    cfg.dead_after = Some(Duration::from_secs(60));
    cfg.check_every = 1000;
    let mut sim = Sim::new(cfg);
    sim.run_for(Duration::from_secs(1));
    // Seeded peers broadcast their ring as they start, each to the peers started before it
    // (a real mesh is not connected yet then): not part of the figures.
    sim.reset_counters();
    let scenario_start = sim.elapsed();

    // Every peer allocates one address.
    let t0 = sim.elapsed();
    let reqs: Vec<(usize, u64)> = (0..peers).map(|i| (i, sim.allocate(i))).collect();
    let mut waited = Duration::ZERO;
    while reqs
        .iter()
        .any(|(i, r)| !sim.replies.contains_key(&(*i, *r)))
        && waited < Duration::from_secs(600)
    {
        sim.run_for(Duration::from_millis(10));
        waited += Duration::from_millis(10);
    }
    let all_allocated = sim.elapsed() - t0;
    let unanswered = reqs
        .iter()
        .filter(|(i, r)| !sim.replies.contains_key(&(*i, *r)))
        .count();
    println!(
        "phase 1: {peers} peers ({seeds} seeds) each allocated: {} answered in {:.2} s simulated, {unanswered} unanswered",
        peers - unanswered,
        all_allocated.as_secs_f64()
    );

    // 5% die; reclaimed after dead_after.
    let dying: Vec<usize> = (0..peers / 20).map(|k| peers - 1 - 3 * k).collect();
    for &d in &dying {
        sim.kill(d);
    }
    sim.run_for(Duration::from_secs(75));
    let live = (0..peers).find(|i| sim.alive(*i)).unwrap_or(0);
    let still_owned = sim.nodes[live]
        .alloc
        .as_ref()
        .map(|a| {
            let names = a.ring().peer_names();
            dying
                .iter()
                .filter(|d| names.contains(&weft_ipam::sim::sim_name(**d)))
                .count()
        })
        .unwrap_or(0);
    println!(
        "phase 2: {} peers killed; after 75 s {} of them still own ranges",
        dying.len(),
        still_owned
    );

    // Partition in two halves for 30 s, both sides allocate, heal.
    sim.partition(|i| (i % 2) as u32);
    let mut part_reqs = Vec::new();
    for i in (0..peers).step_by(7) {
        if sim.alive(i) {
            part_reqs.push((i, sim.allocate(i)));
        }
    }
    sim.run_for(Duration::from_secs(30));
    sim.heal();
    sim.run_for(Duration::from_secs(30));
    let part_unanswered = part_reqs
        .iter()
        .filter(|(i, r)| !sim.replies.contains_key(&(*i, *r)))
        .count();
    println!(
        "phase 3: partition of 30 s, {} allocations during it, {part_unanswered} unanswered 30 s after healing",
        part_reqs.len()
    );

    // A new peer joins and allocates.
    let newcomer = sim.add_peer();
    let t_join = sim.elapsed();
    let r = sim.allocate(newcomer);
    let mut join_time = None;
    for _ in 0..6000 {
        if let Some(res) = sim.replies.get(&(newcomer, r)) {
            if matches!(res, Ok(Reply::Allocated(_))) {
                join_time = Some(sim.elapsed() - t_join);
            }
            break;
        }
        sim.run_for(Duration::from_millis(10));
    }
    let found = sim.check();
    let live: Vec<usize> = (0..sim.nodes.len()).filter(|i| sim.alive(*i)).collect();
    let bytes: u64 = sim.nodes.iter().map(|n| n.bytes_sent).sum();
    let mem: Vec<usize> = live.iter().map(|i| sim.memory_of(*i)).collect();
    let entries = sim.nodes[newcomer]
        .alloc
        .as_ref()
        .map(|a| a.ring().entries().len())
        .unwrap_or(0);
    let total_sim = sim.elapsed() - scenario_start;
    println!(
        "peers:                 {} ({} alive)",
        sim.nodes.len(),
        live.len()
    );
    println!("allocations:           {}", sim.stats.allocations);
    println!(
        "duplicates:            {} (reply check on every answer; overlap scans: {}, last found {found})",
        sim.stats.duplicates, sim.stats.checks
    );
    println!(
        "gossip bytes per peer: {} over {:.0} s simulated after start-up ({} messages delivered, {} dropped by partitions/deaths)",
        bytes / sim.nodes.len() as u64,
        total_sim.as_secs_f64(),
        sim.stats.deliveries,
        sim.stats.dropped
    );
    println!(
        "memory per peer:       ~{} bytes average, {} max (ring: {entries} entries x {} bytes; space, owned map, nicknames, peers)",
        mem.iter().sum::<usize>() / mem.len().max(1),
        mem.iter().max().copied().unwrap_or(0),
        std::mem::size_of::<weft_ipam::ring::Entry>()
    );
    match join_time {
        Some(t) => println!(
            "new peer allocates:    after {:.3} s simulated (2 ms per message)",
            t.as_secs_f64()
        ),
        None => println!("new peer allocates:    NOT within 60 s"),
    }
    println!("gossip errors:         {}", sim.stats.gossip_errors);
    println!(
        "wall time:             {:.1} s",
        wall.elapsed().as_secs_f64()
    );
    if sim.stats.duplicates > 0 || join_time.is_none() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
