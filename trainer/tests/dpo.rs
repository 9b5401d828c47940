//! DPO: the loss falls and the chosen-vs-rejected log-ratio margin grows on
//! hand-made preference pairs; scoring weights cover only generated tokens.

use candle_core::Device;
use trainer::config::TrainConfig;
use trainer::dpo::{scoring_sequence, sequence_logps, train_pairs, DpoSettings, Pair};
use trainer::model::Transformer;

#[test]
fn scoring_weights_cover_the_generation_only() {
    let s = scoring_sequence(&[2, 30, 31], &[5, 40, 6, 7, 41, 8, 3]);
    assert_eq!(s.ids.len(), 10);
    // Positions 0 and 1 predict prompt tokens; 2.. predict generated ones.
    assert_eq!(s.weights, vec![0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
}

#[test]
fn dpo_loss_falls_and_margin_grows() {
    let cfg = TrainConfig::smoke_preset().model_config();
    let (model, params) = Transformer::init(&cfg, 2, &Device::Cpu).unwrap();
    // Same prompt per pair, chosen and rejected continuations differ.
    let pairs: Vec<Pair> = (0..8u32)
        .map(|i| {
            let prompt = [2, 20 + i, 30 + i];
            Pair {
                chosen: scoring_sequence(&prompt, &[5, 100 + i, 101, 6, 7, 50, 8, 3]),
                rejected: scoring_sequence(&prompt, &[5, 200 + i, 201, 6, 7, 60, 8, 3]),
            }
        })
        .collect();
    let before: Vec<f32> = sequence_logps(&model, &[&pairs[0].chosen], &Device::Cpu)
        .unwrap()
        .to_vec1()
        .unwrap();
    let rows = train_pairs(
        &model,
        &params,
        &pairs,
        &DpoSettings {
            beta: 0.1,
            steps: 12,
            lr: 2e-3,
            batch_pairs: 8,
            grad_clip: 1.0,
            warmup: 1,
            seed: 1,
        },
        |_| Ok(()),
    )
    .unwrap();
    let (first, last) = (&rows[0], rows.last().unwrap());
    // Step 1 starts at the reference: margin 0, loss log 2.
    assert!(first.margin.abs() < 1e-4, "first margin {}", first.margin);
    assert!((first.loss - std::f32::consts::LN_2).abs() < 1e-4);
    assert!(
        last.loss < 0.8 * first.loss,
        "loss {} -> {}",
        first.loss,
        last.loss
    );
    assert!(
        last.margin > 1.0,
        "margin {} -> {}",
        first.margin,
        last.margin
    );
    assert_eq!(last.reward_accuracy, 1.0);
    let after: Vec<f32> = sequence_logps(&model, &[&pairs[0].chosen], &Device::Cpu)
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_ne!(before, after, "the model was not updated");
}
