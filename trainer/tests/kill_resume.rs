//! `trainer train` through the binary, as a user runs it: a run directory
//! with a model is never overwritten silently; a run killed with SIGKILL at
//! any moment (between checkpoints, or in the middle of writing one) resumes
//! to a `model.safetensors` byte-identical to an uninterrupted run; an
//! announced checkpoint is always loadable; an unwritable or full output
//! directory gives an error naming the path and keeps the last checkpoint.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const STEPS: u64 = 24;
const EVERY: u64 = 8;

fn config_file(dir: &Path) -> PathBuf {
    let path = dir.join("fast.toml");
    // No final evaluation: the test is about the weights.
    std::fs::write(&path, "final_eval_n = 0\ntokenizer_samples = 200\n").unwrap();
    path
}

fn train_cmd(out: &Path, cfg: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.args([
        "train",
        "--preset",
        "smoke",
        "--quiet",
        "--no-export",
        "--threads",
        "1",
    ])
    .args(["--steps", &STEPS.to_string()])
    .args(["--checkpoint-every", &EVERY.to_string()])
    .args(["--seed", "3", "--config", cfg.to_str().unwrap()])
    .args(["--out", out.to_str().unwrap()])
    .args(extra)
    .env_remove("THINKLING_TEST_KILL");
    c
}

fn run(mut c: Command) -> Output {
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn model_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

/// Steps of the checkpoints a run announced on stderr.
fn announced(err: &str) -> Vec<u64> {
    err.lines()
        .filter_map(|l| l.strip_prefix("checkpoint: step "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Runs with the kill hook at `point`; asserts the process died of SIGKILL.
fn killed_at(out: &Path, cfg: &Path, point: &str, resume: bool) -> Vec<u64> {
    let mut c = train_cmd(out, cfg, if resume { &["--resume"] } else { &[] });
    c.env("THINKLING_TEST_KILL", point);
    let o = run(c);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        o.status.signal(),
        Some(9),
        "not killed at {point}: {:?}\n{}",
        o.status,
        stderr(&o)
    );
    announced(&stderr(&o))
}

/// The checkpoint in `dir` loads (after recovering an interrupted save) and
/// is at least as new as the last one announced.
fn assert_loadable(dir: &Path, last_announced: u64) {
    if last_announced == 0 && !dir.join("state.json").exists() {
        return;
    }
    let l = trainer::checkpoint::load(dir, &candle_core::Device::Cpu)
        .unwrap_or_else(|e| panic!("announced checkpoint {last_announced} unloadable: {e:#}"));
    assert!(
        l.state.step >= last_announced,
        "checkpoint at step {} after step {last_announced} was announced",
        l.state.step
    );
}

#[test]
fn killed_runs_resume_to_the_identical_model_and_runs_are_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config_file(tmp.path());

    // The uninterrupted reference.
    let full = tmp.path().join("full");
    let o = run(train_cmd(&full, &cfg, &[]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(announced(&stderr(&o)), vec![8, 16, 24]);
    let reference = model_bytes(&full);

    // Training again into it is refused, naming both ways out; nothing changes.
    let o = run(train_cmd(&full, &cfg, &["--no-think"]));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("--resume") && err.contains("--force") && err.contains("finished model"),
        "{err}"
    );
    assert_eq!(model_bytes(&full), reference);
    // --force trains over it (same seed: the same model again).
    std::fs::write(full.join("eval.json"), "stale").unwrap();
    let o = run(train_cmd(&full, &cfg, &["--force"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(model_bytes(&full), reference);
    assert!(
        !full.join("eval.json").exists(),
        "the old run's eval.json survived --force"
    );

    // Killed at many moments, each resumed, in one run directory:
    // before the first checkpoint, between checkpoints, half-way through each
    // checkpoint file, after the commit point, between the renames.
    let split = tmp.path().join("split");
    let mut last = 0;
    for (i, point) in [
        "3:step",
        "8:model-half",
        "8:optimizer-half",
        "8:state-half",
        "8:committed",
        "11:step",
        "16:renamed-model",
        "19:step",
        "24:optimizer-half",
        "24:renamed-model",
    ]
    .iter()
    .enumerate()
    {
        let steps = killed_at(&split, &cfg, point, i > 0);
        last = steps.last().copied().unwrap_or(last);
        assert_loadable(&split, last);
    }
    let o = run(train_cmd(&split, &cfg, &["--resume"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        model_bytes(&split) == reference,
        "resumed model.safetensors differs from the uninterrupted run's"
    );

    // A real SIGKILL from outside, right after a checkpoint is announced.
    let outside = tmp.path().join("outside");
    let mut child = train_cmd(&outside, &cfg, &[])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("checkpoint: step 8") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_loadable(&outside, 8);
    let o = run(train_cmd(&outside, &cfg, &["--resume"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(model_bytes(&outside) == reference);
}

#[test]
fn the_default_command_does_not_overwrite_runs_default() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("runs/default");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(run_dir.join("model.safetensors"), "weights of 20 minutes").unwrap();
    // `cargo run -p trainer` with no arguments.
    let o = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("runs/default") && err.contains("--resume") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(run_dir.join("model.safetensors")).unwrap(),
        b"weights of 20 minutes"
    );
}

#[test]
fn an_unusable_output_directory_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config_file(tmp.path());
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = file.join("run");
    let o = run(train_cmd(&out, &cfg, &[]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains(out.to_str().unwrap()), "{}", stderr(&o));
}

/// A disk that fills during a checkpoint: the error names the file, the
/// previous checkpoint survives and resumes (elsewhere) to the same model.
/// Needs a tmpfs mount (root); skipped, saying so, where mounting fails.
#[test]
fn a_full_disk_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config_file(tmp.path());
    let full = tmp.path().join("full");
    let o = run(train_cmd(&full, &cfg, &[]));
    assert!(o.status.success(), "{}", stderr(&o));
    let reference = model_bytes(&full);
    let sizes: u64 = std::fs::read_dir(&full)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let ckpt = ["model.safetensors", "optimizer.safetensors"]
        .iter()
        .map(|f| std::fs::metadata(full.join(f)).unwrap().len())
        .sum::<u64>();
    // Room for the run's files and a third of a second checkpoint.
    let size = sizes + ckpt / 3;

    let mnt = tmp.path().join("small-disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&mnt)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (not root?)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let out = mnt.join("run");
    let o = run(train_cmd(&out, &cfg, &[]));
    let err = stderr(&o);
    assert!(!o.status.success(), "a full disk went unnoticed: {err}");
    assert!(
        err.contains("No space left on device") && err.contains(out.to_str().unwrap()),
        "{err}"
    );
    let last = *announced(&err).last().expect("no checkpoint fitted");
    // Moved to a disk with room, the run resumes from its last checkpoint.
    let moved = tmp.path().join("moved");
    std::fs::create_dir_all(&moved).unwrap();
    for e in std::fs::read_dir(&out).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), moved.join(e.file_name())).unwrap();
    }
    assert_loadable(&moved, last);
    let o = run(train_cmd(&moved, &cfg, &["--resume"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(model_bytes(&moved) == reference);
}
