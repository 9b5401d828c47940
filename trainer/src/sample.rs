//! `trainer sample`: one generation through the runtime engine, streamed.

use anyhow::{anyhow, Result};
use runtime::{GenerateConfig, KvDType, Model, SamplerConfig, Session, Span};
use std::io::Write;

pub struct SampleOptions {
    pub sampler: SamplerConfig,
    pub think_budget: Option<usize>,
    pub max_tokens: usize,
}

/// Streams the thinking and the answer of `prompt` to stdout.
pub fn sample(blob: &[u8], prompt: &str, opts: &SampleOptions) -> Result<()> {
    let model = Model::from_blob(blob).map_err(|e| anyhow!("{e}"))?;
    let context = model.config().max_seq_len as usize;
    let mut arena = vec![0u8; runtime::plan(model.config(), context, KvDType::F32).total_bytes];
    let mut session =
        Session::new(&model, &mut arena, context, KvDType::F32).map_err(|e| anyhow!("{e}"))?;
    let cfg = GenerateConfig {
        sampler: opts.sampler,
        max_new_tokens: opts.max_tokens,
        think_budget: opts.think_budget,
    };
    let mut text = vec![0u8; 64 * 1024];
    let mut stdout = std::io::stdout();
    let mut last = Span::Prompt;
    let mut on_token = |e: &runtime::TokenEvent<'_>| {
        if e.span != last {
            let _ = match e.span {
                Span::Think => write!(stdout, "thinking: "),
                Span::Answer => write!(stdout, "\nanswer: "),
                _ => Ok(()),
            };
            last = e.span;
        }
        if e.id >= runtime::format::special::COUNT {
            let _ = write!(stdout, "{}", e.text);
        }
        let _ = stdout.flush();
    };
    let g = runtime::generate(&mut session, prompt, &cfg, &mut text, &mut on_token)
        .map_err(|e| anyhow!("{e}"))?;
    println!();
    eprintln!(
        "({} prompt tokens, {} generated, stop: {:?}{})",
        g.prompt_tokens,
        g.generated_tokens,
        g.stop,
        if g.think_budget_hit {
            ", think budget reached"
        } else {
            ""
        }
    );
    Ok(())
}
