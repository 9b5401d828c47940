use runtime::*;
#[test]
fn smoke() {
    for dt in [DType::F32, DType::F16, DType::Q8, DType::Q4] {
        let c = testing::tiny_config();
        let blob = testing::random_blob(&c, dt, 32, 1).unwrap();
        let m = Model::from_blob(&blob).unwrap();
        let p = plan(&c, 64, KvDType::F32);
        let mut arena = vec![0u8; p.total_bytes];
        let mut s = Session::new(&m, &mut arena, 64, KvDType::F32).unwrap();
        let mut text = [0u8; 512];
        let cfg = GenerateConfig {
            max_new_tokens: 20,
            ..Default::default()
        };
        let g = generate(&mut s, "the cat", &cfg, &mut text, &mut |e| {
            print!("[{}:{:?}]", e.id, e.text)
        })
        .unwrap();
        println!("\n{dt:?} {:?}", g);
    }
}
