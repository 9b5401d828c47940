//! Target facts that stable Rust does not expose as `cfg(target_feature)`
//! for Arm: which Cortex-M targets have the DSP extension (SXTB16, SMLAD)
//! and the half-precision conversions of the FPU (VCVTB/VCVTT).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(thinkling_arm_dsp)");
    println!("cargo::rustc-check-cfg=cfg(thinkling_arm_fp16)");
    println!("cargo::rerun-if-env-changed=TARGET");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let target = std::env::var("TARGET").unwrap_or_default();
    let dsp = if target.starts_with("thumbv7em-") {
        // Armv7E-M (Cortex-M4/M7) always has the DSP extension.
        true
    } else if target.starts_with("thumbv8m.main-") {
        // Armv8-M Mainline (Cortex-M33/M35P/M55/M85): the DSP extension is
        // optional and the target leaves it off; it is on when the build
        // names such a core or the feature (`-C target-cpu=cortex-m33`, as
        // .cargo/config.toml does, or `-C target-feature=+dsp`). Without it
        // the assembler would refuse SXTB16/SMLAD anyway.
        dsp_in_rustflags(&std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default())
    } else {
        false
    };
    if dsp {
        println!("cargo::rustc-cfg=thinkling_arm_dsp");
        // The FPU of the hard-float targets (FPv4-SP on Armv7E-M, FPv5 on
        // Armv8-M) converts half precision in hardware.
        if target.ends_with("eabihf") {
            println!("cargo::rustc-cfg=thinkling_arm_fp16");
        }
    }
}

/// Whether the rustflags (cargo's `\x1f`-separated encoding) turn on the DSP
/// extension: `+dsp` in the target features (the last mention of `dsp`
/// wins), else a core that has it as the last `target-cpu`.
fn dsp_in_rustflags(encoded: &str) -> bool {
    const DSP_CORES: &[&str] = &["cortex-m33", "cortex-m35p", "cortex-m55", "cortex-m85"];
    let flags: Vec<&str> = encoded.split('\x1f').filter(|f| !f.is_empty()).collect();
    let (mut cpu_dsp, mut feature_dsp) = (false, None);
    let mut i = 0;
    while i < flags.len() {
        let mut flag = flags[i];
        // `-C key=value`, `-Ckey=value` or `--codegen key=value`.
        if matches!(flag, "-C" | "--codegen") {
            i += 1;
            flag = flags.get(i).copied().unwrap_or("");
        } else if let Some(rest) = flag.strip_prefix("-C") {
            flag = rest;
        }
        if let Some(cpu) = flag.strip_prefix("target-cpu=") {
            cpu_dsp = DSP_CORES.contains(&cpu);
        } else if let Some(features) = flag.strip_prefix("target-feature=") {
            for f in features.split(',') {
                match f {
                    "+dsp" => feature_dsp = Some(true),
                    "-dsp" => feature_dsp = Some(false),
                    _ => {}
                }
            }
        }
        i += 1;
    }
    feature_dsp.unwrap_or(cpu_dsp)
}
