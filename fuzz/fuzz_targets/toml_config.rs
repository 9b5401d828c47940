//! The trainer's TOML config overlay, then everything a run derives from the
//! config before training (validation, MoE layer mask, model config).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static A: thinkling_fuzz::Counting = thinkling_fuzz::Counting;
use thinkling_fuzz::trainer_config::TrainConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for base in [TrainConfig::smoke_preset(), TrainConfig::default_preset()] {
        let Ok(c) = base.apply_toml(text, "fuzz.toml") else {
            continue;
        };
        if c.validate().is_ok() {
            let _ = c.moe_layer_mask();
            let _ = c.hidden();
            let _ = c.model_config();
            let _ = tasks::Mix::parse(&c.tasks);
        }
    }
});
