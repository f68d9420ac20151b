//! The benchmarks through the real binary, at a size that takes seconds: they
//! must keep working (every request answered as expected, the figures printed),
//! whatever their speed. Timings are never asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ticketbridge");

fn run(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(args)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn intake_bench_creates_every_ticket_with_one_glpi_request_each() {
    let out = run(&[
        "bench",
        "intake",
        "--tickets",
        "24",
        "--clients",
        "3",
        "--rounds",
        "2",
    ]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| {
            l.starts_with("| intake") || l.starts_with("| seed") || l.starts_with("| the seed")
        })
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    // Two rounds of (intake, seed-style service, the seed's calls alone), then
    // intake at 0 ms.
    assert_eq!(rows.len(), 7, "{out}");
    for row in &rows {
        // | name | latency | tickets | failed | tickets/s | GLPI requests/ticket |
        assert_eq!(row[3], "24", "every ticket answered: {out}");
        assert_eq!(row[4], "0", "none failed: {out}");
        let expected = if row[1].contains("seed") {
            "4.00"
        } else {
            "1.00"
        };
        assert_eq!(row[6], expected, "GLPI requests per ticket: {out}");
    }
    assert!(
        out.contains("speed-up over the seed-style service at 5 ms: median"),
        "{out}"
    );
    assert!(
        out.contains("over the seed's GLPI calls with no service between: median"),
        "{out}"
    );
}

#[test]
fn ingest_bench_stores_every_request() {
    let out = run(&[
        "bench",
        "ingest",
        "--requests",
        "300",
        "--clients",
        "4",
        "--rounds",
        "1",
        "--rate",
        "100",
        "--rate-seconds",
        "1",
    ]);
    // Warm-ups (2 × 300), one round of no-op and ingest, 100 paced requests:
    // only the ingest requests are stored, one job each.
    assert!(out.contains("jobs stored: 700"), "{out}");
    assert!(out.contains("durable ingest / no-op throughput"), "{out}");
}
