//! The candle model and the runtime engine agree on the same weights.

use candle_core::{Device, Tensor};
use runtime::{KvDType, Model, Session};
use trainer::config::TrainConfig;
use trainer::eval;
use trainer::model::Transformer;

#[test]
fn candle_forward_matches_the_runtime() {
    let mut c = TrainConfig::smoke_preset();
    c.n_heads = 4;
    c.n_kv_heads = 2;
    let cfg = c.model_config();
    let (model, params) = Transformer::init(&cfg, 3, &Device::Cpu).unwrap();
    let ckpt = eval::checkpoint(&cfg, &[], &params).unwrap();
    let blob = eval::f32_blob(&ckpt).unwrap();
    let rt = Model::from_blob(&blob).unwrap();
    let mut arena = vec![0u8; runtime::plan(rt.config(), 32, KvDType::F32).total_bytes];
    let mut session = Session::new(&rt, &mut arena, 32, KvDType::F32).unwrap();
    let ids: Vec<u32> = vec![2, 20, 31, 45, 60, 17, 4, 90, 33, 12, 250];
    let x = Tensor::from_vec(ids.clone(), (1, ids.len()), &Device::Cpu).unwrap();
    let logits = model.forward(&x, None).unwrap();
    for (pos, &id) in ids.iter().enumerate() {
        let want: Vec<f32> = logits.get(pos).unwrap().to_vec1().unwrap();
        let got = session.forward(id).unwrap();
        let err = want
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-3, "position {pos}: max logit difference {err}");
    }
}
