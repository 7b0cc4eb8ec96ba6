//! Every accepted form of the attribute and of the function.

use cron_runtime::{cron_target, JobContext};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Args {
    #[allow(dead_code)]
    n: u32,
}

#[derive(Serialize)]
struct Summary {
    n: u32,
}

/// Context only.
#[cron_target("pass.context-only")]
async fn context_only(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}

/// With a payload and an output.
#[cron_target("pass.with-payload", timeout = "5m")]
pub async fn with_payload(_ctx: JobContext, args: Args) -> anyhow::Result<Summary> {
    Ok(Summary { n: args.n })
}

/// A diagnostic target, with a timeout, in either order.
#[cron_target("pass.diagnostic", diagnostic, timeout = "1m")]
pub async fn diagnostic(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}

/// Any `Display` error; patterns in the arguments; raw identifiers; a fully qualified context.
#[cron_target("pass.patterns", timeout = "250ms")]
pub(crate) async fn r#patterns(
    _: cron_runtime::JobContext,
    Args { n }: Args,
) -> Result<Vec<u32>, std::io::Error> {
    Ok(vec![n])
}

/// Named like the generated code's locals, which must not shadow it.
#[cron_target("pass.shadowing")]
async fn payload(ctx: JobContext, args: Args) -> anyhow::Result<u32> {
    let _ = ctx;
    Ok(args.n)
}

mod nested {
    use super::*;

    #[cron_target("0-starts.with_digit")]
    #[allow(clippy::unused_async)]
    async fn attributes_are_kept(_ctx: JobContext) -> Result<serde_json::Value, String> {
        Ok(serde_json::json!({}))
    }
}

fn main() {
    // The functions stay callable as written.
    let _ = context_only;
    let _ = with_payload;
    let _ = patterns;
    let _ = payload;
    // Five here, and the runtime's built-in http.request.
    assert_eq!(cron_runtime::registry::all().len(), 6);
}
