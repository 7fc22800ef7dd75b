//! Artifact throughput: sagedock pack / unpack against GNU tar (gzip, and with pigz, the
//! multi-core gzip, when it is installed) on the same data, in the same run, and the cost
//! of a second deployment through the cache.
//!
//! Run: `cargo bench --bench artifact` (needs GNU tar and gzip on PATH; pigz from
//! `apt-get install -y pigz` for its rows).
//! Size: `SAGEDOCK_BENCH_BYTES` (default 1 GiB): one incompressible file of ~90% of the
//! size plus 4,000 small files; `SAGEDOCK_BENCH_ROUNDS` rounds each (default 3), the
//! median is reported. The contenders alternate who goes first; before each timed step
//! dirty pages are flushed and (as root) the page cache dropped.
//! Writes the figures as JSON to `target/bench-artifact.json`.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sagedock::artifact::{self, Cache, Limits, PackOptions};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: fast incompressible bytes.
fn fill_random(buf: &mut [u8], state: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let v = state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

fn make_tree(root: &Path, total: u64) -> (u64, u64) {
    let small_files = 4_000u64;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut written = 0u64;
    let mut small_total = 0u64;
    // Small files: 1–16 KiB of text-like (compressible) content in 40 folders.
    for i in 0..small_files {
        let dir = root.join(format!("code/pkg{:02}", i % 40));
        fs::create_dir_all(&dir).unwrap();
        let len = 1024 + (i * 7919 % 15_360) as usize;
        let line = format!("def f_{i}(x):\n    return x * {i} + {}\n", i % 97);
        let body: Vec<u8> = line.bytes().cycle().take(len).collect();
        fs::write(dir.join(format!("m{i:05}.py")), &body).unwrap();
        small_total += len as u64;
    }
    written += small_total;
    let big = total.saturating_sub(small_total);
    let mut out =
        BufWriter::with_capacity(1 << 20, fs::File::create(root.join("model.bin")).unwrap());
    let mut buf = vec![0u8; 1 << 20];
    let mut left = big;
    while left > 0 {
        let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        fill_random(&mut buf[..n], &mut state);
        out.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    out.flush().unwrap();
    written += big;
    (written, small_files + 1)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Flushes dirty pages and, where allowed (root), drops the page cache, so each timed step
/// starts from the same state (not timed). On small VMs the step that follows a large
/// write otherwise pays for it.
fn settle() {
    let _ = Command::new("sync").status();
    let _ = fs::write("/proc/sys/vm/drop_caches", "3");
    std::thread::sleep(Duration::from_millis(500));
}

/// Times each contender's step, each after [`settle`], the one going first turning with
/// the round (on this VM the step after a large write is the slower one).
fn race(round: usize, contenders: &mut [&mut dyn FnMut()]) -> Vec<Duration> {
    let n = contenders.len();
    let mut times = vec![Duration::ZERO; n];
    for i in 0..n {
        let which = (round + i) % n;
        settle();
        let t = Instant::now();
        contenders[which]();
        times[which] = t.elapsed();
    }
    times
}

fn run(cmd: &mut Command) {
    let status = cmd.status().expect("running a command");
    assert!(status.success(), "{cmd:?} failed");
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing useful.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let total = env_u64("SAGEDOCK_BENCH_BYTES", 1 << 30);
    let rounds = usize::try_from(env_u64("SAGEDOCK_BENCH_ROUNDS", 3).max(1)).unwrap_or(3);
    let work = tempfile::Builder::new()
        .prefix("sagedock-bench-")
        .tempdir_in(std::env::var("SAGEDOCK_BENCH_DIR").unwrap_or_else(|_| "target".into()))
        .unwrap();
    let src = work.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let t = Instant::now();
    let (bytes, files) = make_tree(&src, total);
    eprintln!("made {files} files, {bytes} bytes in {:.1?}", t.elapsed());

    let gnu_tgz = work.path().join("gnu.tar.gz");
    let pigz_tgz = work.path().join("pigz.tar.gz");
    let ours_tgz = work.path().join("ours.tar.gz");
    // pigz: the multi-core gzip a user would reach for, through GNU tar.
    let pigz = Command::new("pigz").arg("--version").output().is_ok();
    if !pigz {
        eprintln!("pigz is missing (apt-get install -y pigz): its rows are left out");
    }
    // tar -C DIR FLAGS ARCHIVE [MEMBER]
    let tar = |dir: &Path, flags: &[&str], archive: &Path, member: Option<&str>| {
        run(Command::new("tar")
            .arg("-C")
            .arg(dir)
            .args(flags)
            .arg(archive)
            .args(member));
    };
    // Per contender (tar, tar -I pigz, sagedock), the time of each round.
    let (mut pack, mut unpack) = ([vec![], vec![], vec![]], [vec![], vec![], vec![]]);
    for round in 0..rounds {
        let mut gnu = || tar(&src, &["-czf"], &gnu_tgz, Some("."));
        let mut with_pigz = || tar(&src, &["-I", "pigz", "-cf"], &pigz_tgz, Some("."));
        let mut ours = || {
            artifact::pack(&src, &ours_tgz, &PackOptions::default()).unwrap();
        };
        let times = if pigz {
            race(round, &mut [&mut gnu, &mut with_pigz, &mut ours])
        } else {
            let t = race(round, &mut [&mut gnu, &mut ours]);
            vec![t[0], Duration::ZERO, t[1]]
        };
        eprintln!(
            "round {round}: pack tar czf {:.2?}, tar -I pigz {:.2?}, sagedock {:.2?}",
            times[0], times[1], times[2]
        );
        for (all, t) in pack.iter_mut().zip(times) {
            all.push(t);
        }
    }
    for round in 0..rounds {
        let dests =
            ["gnu", "pigz", "ours"].map(|who| work.path().join(format!("{who}-out-{round}")));
        for dest in &dests[..2] {
            fs::create_dir(dest).unwrap();
        }
        let mut gnu = || tar(&dests[0], &["-xzf"], &gnu_tgz, None);
        let mut with_pigz = || tar(&dests[1], &["-I", "pigz", "-xf"], &gnu_tgz, None);
        let mut ours = || {
            artifact::unpack(&gnu_tgz, &dests[2], &Limits::default(), None).unwrap();
        };
        let times = if pigz {
            race(round, &mut [&mut gnu, &mut with_pigz, &mut ours])
        } else {
            let t = race(round, &mut [&mut gnu, &mut ours]);
            vec![t[0], Duration::ZERO, t[1]]
        };
        eprintln!(
            "round {round}: unpack tar xzf {:.2?}, tar -I pigz {:.2?}, sagedock {:.2?}",
            times[0], times[1], times[2]
        );
        for (all, t) in unpack.iter_mut().zip(times) {
            all.push(t);
        }
        for dest in &dests {
            let _ = fs::remove_dir_all(dest);
        }
    }
    let cache = Cache::at(work.path().join("cache"));
    settle();
    let t = Instant::now();
    let cold = cache.unpack(&gnu_tgz, &Limits::default()).unwrap();
    let cache_cold = t.elapsed();
    assert!(!cold.hit);
    let mut warm = vec![];
    for _ in 0..rounds.max(5) {
        let t = Instant::now();
        let hit = cache.unpack(&gnu_tgz, &Limits::default()).unwrap();
        warm.push(t.elapsed());
        assert!(hit.hit);
    }
    let [pg, pp, po] = pack.map(median);
    let [ug, up, uo] = unpack.map(median);
    let cw = median(warm);
    let mib = bytes as f64 / (1 << 20) as f64;
    let rate = |d: Duration| mib / d.as_secs_f64();
    let vs = |reference: Duration, d: Duration| reference.as_secs_f64() / d.as_secs_f64();
    println!("artifact bench: {files} files, {mib:.0} MiB (one incompressible file + small files), median of {rounds}");
    for (step, [gnu, with_pigz, ours]) in [("pack", [pg, pp, po]), ("unpack", [ug, up, uo])] {
        println!(
            "  {step:<7} tar (gzip)   {gnu:>8.2?}  {:>7.1} MiB/s",
            rate(gnu)
        );
        if pigz {
            println!(
                "  {step:<7} tar -I pigz  {with_pigz:>8.2?}  {:>7.1} MiB/s  ({:.2}x tar)",
                rate(with_pigz),
                vs(gnu, with_pigz)
            );
        }
        let against_pigz = if pigz {
            format!(", {:.2}x pigz", vs(with_pigz, ours))
        } else {
            String::new()
        };
        println!(
            "  {step:<7} sagedock     {ours:>8.2?}  {:>7.1} MiB/s  ({:.2}x tar{against_pigz})",
            rate(ours),
            vs(gnu, ours)
        );
    }
    println!(
        "  cache   first deployment {:.2?}, second deployment {:.3} ms",
        cache_cold,
        cw.as_secs_f64() * 1e3
    );
    let report = serde_json::json!({
        "bytes": bytes, "files": files, "rounds": rounds,
        "pack_tar_s": pg.as_secs_f64(), "pack_sagedock_s": po.as_secs_f64(),
        "unpack_tar_s": ug.as_secs_f64(), "unpack_sagedock_s": uo.as_secs_f64(),
        "pack_speedup": vs(pg, po), "unpack_speedup": vs(ug, uo),
        "pack_pigz_s": pigz.then_some(pp.as_secs_f64()), "unpack_pigz_s": pigz.then_some(up.as_secs_f64()),
        "pack_vs_pigz": pigz.then_some(vs(pp, po)), "unpack_vs_pigz": pigz.then_some(vs(up, uo)),
        "cache_first_s": cache_cold.as_secs_f64(), "cache_second_ms": cw.as_secs_f64() * 1e3,
    });
    let _ = fs::write(
        "target/bench-artifact.json",
        serde_json::to_vec_pretty(&report).unwrap(),
    );
}
