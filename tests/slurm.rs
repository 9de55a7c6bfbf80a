//! A sweep run as a Slurm job array on a real single-node cluster, merged by a dependent
//! job, equals the unsharded sweep. `.ci/run` starts the cluster (scripts/slurm-local.sh), so
//! CI runs it for real; without a cluster the test fails unless PFODE_SKIP_SLURM=1 asks it to
//! skip, which `scripts/test.sh` does, saying so, on a machine without Slurm.

use pfode::experiment::table;
use std::process::Command;

const SPEC: &str = "name = \"slurm\"\nmodels = [\"ring2d\", \"gauss2d\"]\nspacings = [\"logsnr\", \"karras\"]\nnfe = [4, 8, 16]\nsamples = 300\nmetrics = [\"error\", \"frechet\"]\n[[solvers]]\nname = \"ddim\"\n[[solvers]]\nname = \"unipc\"\n";

fn slurm_available() -> Result<(), String> {
    let sinfo = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .map_err(|e| format!("no sinfo ({e})"))?;
    let states = String::from_utf8_lossy(&sinfo.stdout).to_string();
    if !sinfo.status.success()
        || !states.contains("idle") && !states.contains("mix") && !states.contains("alloc")
    {
        return Err(format!(
            "no reachable Slurm node (sinfo: {} {})",
            states.trim(),
            String::from_utf8_lossy(&sinfo.stderr).trim()
        ));
    }
    Ok(())
}

#[test]
fn slurm_job_array_and_merge_equal_the_unsharded_sweep() {
    if let Err(why) = slurm_available() {
        // Skipping is something the caller asks for, never something that happens quietly.
        if std::env::var("PFODE_SKIP_SLURM").as_deref() == Ok("1") {
            println!("SKIPPED (PFODE_SKIP_SLURM=1): {why}");
            return;
        }
        panic!(
            "{why}: start a local cluster with `eval \"$(scripts/slurm-local.sh start DIR)\"`, \
             or set PFODE_SKIP_SLURM=1 to skip this test"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let bin = env!("CARGO_BIN_EXE_pfode");
    let local = dir.path().join("local");
    let o = Command::new(bin)
        .args([
            "sweep",
            spec.to_str().unwrap(),
            "--out",
            local.to_str().unwrap(),
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cluster = dir.path().join("cluster");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/slurm-sweep.sh");
    let o = Command::new(script)
        .args([
            spec.to_str().unwrap(),
            "3",
            cluster.to_str().unwrap(),
            "--wait",
        ])
        .env("PFODE", bin)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "slurm-sweep.sh failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let strip = |p: &std::path::Path| {
        let (mut rows, _) = table::read(&p.join("results.csv")).unwrap();
        rows.iter_mut().for_each(|r| r.wall_ms = 0.0);
        rows
    };
    // Three shards really ran, as three array tasks.
    for k in 0..3 {
        assert!(
            cluster
                .join(format!("shard-{k}"))
                .join("results.csv")
                .exists(),
            "shard {k} missing"
        );
    }
    assert_eq!(strip(&cluster), strip(&local));
}
