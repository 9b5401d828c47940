//! Target facts that stable Rust does not expose as `cfg(target_feature)`
//! for Arm: which Cortex-M targets have the DSP extension (SXTB16, SMLAD)
//! and the half-precision conversions of the FPU (VCVTB/VCVTT).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(thinkling_arm_dsp)");
    println!("cargo::rustc-check-cfg=cfg(thinkling_arm_fp16)");
    println!("cargo::rerun-if-env-changed=TARGET");
    let target = std::env::var("TARGET").unwrap_or_default();
    // Armv7E-M (Cortex-M4/M7) always has the DSP extension.
    if target.starts_with("thumbv7em-") {
        println!("cargo::rustc-cfg=thinkling_arm_dsp");
        // Its FPU (FPv4-SP / FPv5) converts half precision in hardware.
        if target.ends_with("eabihf") {
            println!("cargo::rustc-cfg=thinkling_arm_fp16");
        }
    }
}
