//! `strata sim`: seeds pass with exit status 0 and a summary; a single seed
//! replays identically; a bad replica-set size is refused.

use std::process::Command;

fn strata(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_strata")).args(args).output().expect("run strata")
}

#[test]
fn five_seeds_pass_and_a_seed_replays_identically() {
    let out = strata(&["sim", "--seeds", "5"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout
            .contains("sim: 5 seeds from 0 of 3 nodes (random, lease-race, transactions): 15 runs"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("; 0 failing"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");

    let replay = |()| strata(&["sim", "--seed", "3", "--nodes", "5", "--mode", "transactions"]);
    let (a, b) = (replay(()), replay(()));
    assert!(a.status.success() && b.status.success());
    let a = String::from_utf8_lossy(&a.stdout).to_string();
    assert!(a.starts_with("seed 3 transactions: ok:"), "{a}");
    assert!(a.contains("1 seeds from 3 of 5 nodes (transactions): 1 runs"), "{a}");
    assert_eq!(a, String::from_utf8_lossy(&b.stdout), "a seed replays identically");
}

#[test]
fn a_replica_set_of_four_is_refused() {
    let out = strata(&["sim", "--seeds", "1", "--nodes", "4"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--nodes must be 3 or 5"));
}
